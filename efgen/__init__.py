"""efgen: generate FPGA accelerators that train CNNs on the board itself.

The Python API (:mod:`efgen.api`)::

    import efgen
    acc = efgen.build("resnet20", board="zcu102", batch=32)
    acc.report["effective_gflops"]; acc.write("build/r20"); acc.csim(x, labels)
    efgen.sweep("configs/sweeps/zcu102-resnet20.yaml")

Errors the caller can cause raise :class:`EfgenError` (``.what``, ``.where``, ``.fix``).
"""

from efgen._version import __version__
from efgen.api import Accelerator, Written, build, sweep
from efgen.errors import EfgenError

__all__ = ["Accelerator", "EfgenError", "Written", "build", "sweep", "__version__"]
