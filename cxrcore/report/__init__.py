"""The comparison report of a run (``cxr-report``): tables, figures, McNemar tests and the paper's numbers.

Modules: :mod:`~cxrcore.report.collect` (read committed outputs), :mod:`~cxrcore.report.paper` (the published
numbers), :mod:`~cxrcore.report.tables`, :mod:`~cxrcore.report.figures`, :mod:`~cxrcore.report.render` and
:mod:`~cxrcore.report.job` (``run(settings)``). Nothing here imports TensorFlow, and importing the package
imports none of its modules.
"""
