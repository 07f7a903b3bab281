"""efgen: generate FPGA accelerators that train CNNs on the board itself."""

__version__ = "0.1.0"
