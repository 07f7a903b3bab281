"""The report: what a build and the vendor tools say about a Design.

* :mod:`efgen.report.summary` - report.json, report.md and the one-screen summary.
* :mod:`efgen.report.plots` - time per layer-phase and the roofline (PNG).
* :mod:`efgen.report.vendor` - Vitis/Vivado HLS reports (csynth.xml, csynth.rpt, cosim.rpt)
  and the model-vs-vendor table.
"""
