"""The host side of the accelerator on a device: the register protocol
(:mod:`efgen.runtime.protocol`) and training steps (:mod:`efgen.runtime.trainer`), shared
by the PYNQ board driver that ``efgen build`` writes and by co-simulation."""
