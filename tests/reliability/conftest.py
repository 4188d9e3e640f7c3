"""tests/reliability: the CI subset of tools/analysis_tools/fault_drill.py plus one test per defect it found.

The tiny test VAE and config writer of ``tests/test_tools/tiny_vae_fixtures.py`` are shared (imported by name).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_tools'))
