"""The analytical model: cycles, DRAM traffic and bursts, resources and energy.

* :mod:`efgen.model.engine` - the unified Tm x Tn convolution engine (FP, BP, WU of
  conv and linear layers), vectorised over candidate tilings.
* :mod:`efgen.model.aux` - the vector engine (batchnorm, pooling, add, shortcut, ReLU,
  error sums, flatten reorders, the SGD update of vectors).
* :mod:`efgen.model.resources` - DSP, BRAM18, URAM, LUT, FF.
* :mod:`efgen.model.energy` - joules per step.
* :mod:`efgen.model.evaluate` - a whole Design: per layer-phase rows and totals.
"""
