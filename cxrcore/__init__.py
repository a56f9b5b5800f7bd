"""cxr-gan core library: storage, datasets, models, metrics and the jobs' ``run()`` functions."""

__version__ = "0.1.0"
