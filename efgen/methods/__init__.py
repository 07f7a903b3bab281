"""Efficient on-device training methods (issue 15) as first-class training modes.

A ``training:`` section (in a net file, or a file given with ``--training FILE``)
selects any combination of:

* ``gradient_filter`` - BP and WU on patch-averaged error maps (Yang et al., CVPR 2023;
  semantics from GradientFilter-CVPR23 ``classification/custom_op/conv_avg.py``);
* ``error_pruning`` - error-map pruning: BP and WU on the top ``keep`` fraction of each
  conv's output-error channels (the EMP half of early instance filtering + error-map
  pruning);
* ``minibatch_drop`` - E2-Train's stochastic mini-batch dropping (SMD);
* ``layer_update`` - E2-Train's selective layer update (SLU): residual blocks skipped
  per sample;
* ``instance_filter`` - early instance filtering (EIF): a filter net ranks the batch and
  the main net trains on the kept fraction;
* ``batchnorm: shift_only`` and ``train_last_blocks`` - MobileTL (AAAI 2023).

Modules: :mod:`.spec` parses and validates the section against a net; :mod:`.golden`
(ops) and :mod:`.step` (the step's plan: drop, skip and keep masks) hold the exact numpy
semantics, which :func:`efgen.golden.model.train_step` runs; :mod:`.cost` prices them for
the cost model and the scheduler; :mod:`.compare` and :mod:`.report` put each method
against full back-propagation in report.md; :mod:`.show` is ``efgen net show
--training``; :mod:`.sweep` the sweep file's method axes. The generated C++ of gradient
filtering and error-map pruning is :mod:`efgen.hls.methods`. efgen prices cost only; the
accuracy a method gives must be measured by the user (see README.md).
"""
