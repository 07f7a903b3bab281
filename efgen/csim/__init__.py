"""C-simulation of the generated HLS C++ (g++ + ctypes), and the descriptor interpreter."""
