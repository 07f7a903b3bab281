"""Reference RTL (Verilog) of the training engine, rendered from templates/rtl.

One module per block; :mod:`efgen.rtl.fpu` holds the FP32 arithmetic units, in two
selectable implementations: synthesizable (flush-to-zero) and behavioural (numpy float32
bit for bit).
"""
