"""Vivado integration of a build: the scripts in DIR/vivado/ (templates/vivado).

:mod:`efgen.vivado.emit` renders them: package_rtl_ip.tcl (rtl/ as an IP),
block_design.tcl (PS, SmartConnects, reset, the accelerator) and build.tcl (up to the
bitstream and the .hwh PYNQ loads). Nothing here runs Vivado; tests/test_vivado.py runs
the scripts under tclsh with stub Vivado commands.
"""
