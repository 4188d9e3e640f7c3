"""tests/reliability: the CI subset of the fault drill (projects/fault_drill) plus one test per defect it found.

The tiny test VAE and config writer (``tiny_vae_fixtures``) are shared with the other tests; ``rel_helpers`` (this
folder) adds the in-process runner helpers these tests use. ``tiny_vae_fixtures`` is on the path through pytest's
``pythonpath`` setting (pyproject.toml); ``rel_helpers`` because pytest puts the folder of a test module that is not
in a package (no ``__init__.py``) on ``sys.path`` when it imports it (the default ``prepend`` import mode).
"""
