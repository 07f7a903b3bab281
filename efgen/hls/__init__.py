"""HLS C++ generation: the program (memory map + descriptors) and the emitted project."""
