"""efgen's version (a module of its own, so that every module can import it without
importing the package's API)."""

__version__ = "0.1.0"
