"""Every config resolves (bases merged in mmengine's order, then each preset) to its stored fingerprint.

Restructuring the `_base_` files (recipes, shared components) must not change what any config trains. A fingerprint
is one short sha256 per top-level key of the resolved dict (canonical JSON: sorted keys, tuples as lists), with and
without each preset, so a failure names the config, the preset and the keys that changed. After a deliberate config
change run ``python tests/test_configs/test_resolved_configs.py`` (it rewrites ``resolved_configs.json`` beside this
file) and say in the commit which resolved keys changed and why.
"""
from __future__ import annotations

import glob
import json
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from transvae.engine.config_surgery import apply_preset, available_presets, config_fingerprint

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
STORE = osp.join(osp.dirname(osp.abspath(__file__)), 'resolved_configs.json')


def leaf_configs() -> list[str]:
    """Every config a user runs: all of ``configs/`` except the ``_base_`` folders (relative paths, sorted)."""
    paths = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    return sorted(osp.relpath(p, REPO) for p in paths if '_base_' not in osp.relpath(p, REPO).split(osp.sep))


def fingerprint(rel_path: str) -> dict[str, dict[str, str]]:
    """``{'': {key: digest}, '<preset>': {key: digest}, ...}`` for one config (path relative to the repo)."""
    path = osp.join(REPO, rel_path)
    cfg = Config.fromfile(path)
    out = {'': config_fingerprint(cfg)}
    for name in available_presets(cfg):
        out[name] = config_fingerprint(apply_preset(Config.fromfile(path), name))
    return out


def compute_all() -> dict[str, dict[str, dict[str, str]]]:
    return {p: fingerprint(p) for p in leaf_configs()}


def _stored() -> dict:
    with open(STORE) as f:
        return json.load(f)


STORED = _stored() if osp.exists(STORE) else {}


def test_every_config_has_a_fingerprint():
    assert sorted(STORED) == leaf_configs(), \
        'configs added or removed: regenerate with `python tests/test_configs/test_resolved_configs.py`'


@pytest.mark.parametrize('path', sorted(STORED))
def test_resolved_config_unchanged(path):
    now = fingerprint(path)
    assert sorted(now) == sorted(STORED[path]), f'{path}: presets changed {sorted(STORED[path])} -> {sorted(now)}'
    for preset, keys in STORED[path].items():
        label = f'{path} (preset {preset!r})' if preset else path
        changed = sorted(k for k in set(keys) | set(now[preset]) if keys.get(k) != now[preset].get(k))
        assert not changed, (f'{label}: resolved keys changed: {changed}. If intended, regenerate with '
                             '`python tests/test_configs/test_resolved_configs.py` and justify the change in the commit')


def _code_lines(path: str) -> list[str]:
    return [line for line in open(path).read().splitlines() if line.strip() and not line.lstrip().startswith('#')]


def test_recipe_leaves_state_only_what_differs():
    """Scaling points and stage-1 / stage-2 recipes name an architecture and a recipe base (+ stage 2's checkpoint);
    the model is the recipe's, with at most a memory switch added (``arch=dict(with_cp=True)``: L f8d16 stage 2, scaling L / H / G)."""
    scaling = glob.glob(osp.join(REPO, 'configs', 'experiments', 'scaling', '*.py'))
    stages = [p for p in glob.glob(osp.join(REPO, 'configs', 'transvae', 'transvae-*_8xb32-10*.py')) if 'fsdp' not in p]
    assert len(scaling) == 20 and len(stages) == 7  # 3 stage-1, 3 stage-2, TransVAE-T stage 1 wo VF
    for path in scaling + stages:
        code = _code_lines(path)
        model_line = code[1] in ('model = _base_.recipe_model',
                                 'model = dict(**_base_.recipe_model, arch=dict(with_cp=True))')
        assert len(code) <= 4 and 'recipes/' in code[0] and model_line, (path, code)


def main() -> int:
    with open(STORE, 'w') as f:
        json.dump(compute_all(), f, indent=1, sort_keys=True)
        f.write('\n')
    print(f'wrote {STORE}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
