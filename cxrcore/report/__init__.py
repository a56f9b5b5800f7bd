"""The comparison report of a run (``cxr-report``): tables, figures, McNemar tests and the paper's numbers.

Packages and modules: :mod:`~cxrcore.report.collect` (read committed outputs), :mod:`~cxrcore.report.paper`
(the published numbers), :mod:`~cxrcore.report.tables` (numbers, display tables, ``tables.csv``),
:mod:`~cxrcore.report.figures`, :mod:`~cxrcore.report.render` (the document, ``report.md`` and ``index.html``)
and :mod:`~cxrcore.report.job` (``run(settings)``, the step: docs/architecture.md, "Data flow"). Nothing here
imports TensorFlow, and importing the package imports none of its modules.
"""
