"""Co-simulation of the reference RTL under cocotb (Verilator or Icarus).

* :mod:`efgen.cosim.runner` - build and run a cocotb testbench (one build per parameter set).
* :mod:`efgen.cosim.layers` - layer-phases on the RTL, every output compared with the golden.
* :mod:`efgen.cosim.step` - a whole training step, conv/linear descriptors on the RTL.
* :mod:`efgen.cosim.validate` - the model's cycles and bursts for what the RTL ran.
* :mod:`efgen.cosim.cli` - ``efgen cosim``.

The testbenches are the repository's ``sim/`` folder; they import efgen, never the other
way round.
"""
