"""Simulation drivers: C-simulation of the generated HLS C++ (g++ + ctypes)."""
