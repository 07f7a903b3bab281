"""cocotb testbenches of efgen's reference RTL, driven from tests/ (see runner.py).

One folder per RTL block (``fp/``: the FP32 units). A simulator imports a folder's
modules top-level, so :func:`efgen.cosim.runner.run_cocotb` puts the folder on its path.
"""
