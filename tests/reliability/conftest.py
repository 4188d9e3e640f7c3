"""tests/reliability: the CI subset of tools/analysis_tools/fault_drill.py plus one test per defect it found.

The tiny test VAE and config writer (``tiny_vae_fixtures``) are shared with the other tests; ``rel_helpers`` (this
folder) adds the in-process runner helpers these tests use.
"""
import os.path as osp
import sys

_TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (osp.join(_TESTS, 'test_tools'), osp.join(_TESTS, 'helpers'), osp.dirname(osp.abspath(__file__))):
    if osp.isdir(_p) and _p not in sys.path:
        sys.path.insert(0, _p)
