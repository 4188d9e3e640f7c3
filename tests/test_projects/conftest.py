"""The LightningDiT project registers itself into the core registries on import."""
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import projects.lightningdit.lightningdit  # noqa: E402,F401
