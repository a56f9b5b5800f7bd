"""Thin container entrypoints, one per image: each parses settings and calls one ``run()`` in ``cxrcore``."""
