"""The package is layered: every import inside ``transvae/`` points down (or sideways within a sub-package), never up.

Layers, bottom to top (a module may import from its own layer and the layers below):

    0  transvae.registry, transvae.utils.* (except setup_env), transvae.version
    1  models.layers, models.distributions, models.pretrained, models.utils
    2  models.blocks
    3  models.backbones, models.losses, models.discriminators, models.foundation, models.data_preprocessors
    4  models.autoencoders, models.wrappers, models.averaged_model
    5  models.adapters, models (package)
    6  datasets
    7  evaluation, visualization
    8  engine
    9  apis, benchmark, studies, utils.setup_env (register_all_modules imports every registering package: the one
       entry point) and the ``transvae.utils`` package itself, which
       re-exports it (its other modules stay in layer 0)

The static scan reads every ``import`` of every module, including the ones hidden inside functions (Python does
not fail on those, but the layering still runs upward). A second check imports each module first, in a forked
child of an interpreter that has loaded only third-party packages, so a circle that depends on which module is
imported first fails too.
"""
from __future__ import annotations

import ast
import os
import os.path as osp
import subprocess
import sys

import pytest

PKG = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'transvae')

LAYERS: list[tuple[str, ...]] = [
    ('transvae.registry', 'transvae.utils', 'transvae.version'),
    ('transvae.models.layers', 'transvae.models.distributions', 'transvae.models.pretrained',
     'transvae.models.utils'),
    ('transvae.models.blocks', ),
    ('transvae.models.backbones', 'transvae.models.losses', 'transvae.models.discriminators',
     'transvae.models.foundation', 'transvae.models.data_preprocessors'),
    ('transvae.models.autoencoders', 'transvae.models.wrappers', 'transvae.models.averaged_model'),
    ('transvae.models.adapters', 'transvae.models'),
    ('transvae.datasets', ),
    ('transvae.evaluation', 'transvae.visualization'),
    ('transvae.engine', ),
    ('transvae.apis', 'transvae.benchmark', 'transvae.utils.setup_env', 'transvae.studies'),
]


EXACT = {
    'transvae': 0,  # the root __init__ (version only); a new sub-package must be placed in LAYERS explicitly
    'transvae.utils': 9,  # the package __init__ (re-exports register_all_modules), not its modules
}


def layer_of(module: str) -> int:
    """Layer of a dotted module name: :data:`EXACT`, else the longest matching prefix in :data:`LAYERS`."""
    if module in EXACT:
        return EXACT[module]
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + '.')) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise KeyError(f'{module} is in no layer: add it to LAYERS in {__file__}')
    return best


def all_modules() -> dict[str, str]:
    """``{dotted name: file path}`` of every module of the package."""
    out = {}
    root = osp.dirname(osp.abspath(PKG))
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith('.py'):
                path = osp.join(d, f)
                rel = osp.relpath(path, root)[:-3].replace(os.sep, '.')
                out[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = path
    return dict(sorted(out.items()))


def imports_of(module: str, path: str) -> list[tuple[str, int]]:
    """``(imported transvae module, line)`` for every import in the file, at any depth (function bodies too)."""
    is_pkg = path.endswith('__init__.py')
    base = module.split('.') if is_pkg else module.split('.')[:-1]
    found = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split('.')[0] == 'transvae']
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = '.'.join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target.split('.')[0] != 'transvae':
                continue
            # `from pkg import name`: name may be a submodule
            for a in node.names:
                sub = f'{target}.{a.name}'
                found.append((sub if sub in MODULES else target, node.lineno))
    return found


MODULES = all_modules()


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_upward_import():
    bad = []
    for m, path in MODULES.items():
        for target, line in imports_of(m, path):
            if target not in MODULES:
                bad.append(f'{osp.relpath(path)}:{line} imports {target}, which does not exist')
            elif layer_of(target) > layer_of(m) and not m.startswith(target + '.') and target != 'transvae':
                bad.append(f'{osp.relpath(path)}:{line}: {m} (layer {layer_of(m)}) imports {target} '
                           f'(layer {layer_of(target)})')
    assert not bad, 'upward imports:\n' + '\n'.join(bad)


def test_layer_rule_catches_an_upward_import(tmp_path):
    """The scan is not vacuous: a model module importing the engine or a dataset is flagged."""
    f = tmp_path / 'x.py'
    f.write_text('def g():\n    from transvae.engine.fsdp import check_fsdp_model\n'
                 'from ..datasets.collate import is_empty_batch\n')
    found = imports_of('transvae.models.layers.x', str(f))
    assert ('transvae.engine.fsdp', 2) in found
    assert [layer_of(t) > layer_of('transvae.models.layers.x') for t, _ in found] == [True, True]


_CHILD = r'''
import os, sys, importlib, traceback
import torch, torchvision, numpy, scipy, cv2, lpips, mmcv, mmcv.transforms, mmengine  # third-party only
import mmengine.runner, mmengine.model, mmengine.dataset, mmengine.evaluator, mmengine.optim, mmengine._strategy
import torch.distributed.fsdp
assert not [m for m in sys.modules if m == 'transvae' or m.startswith('transvae.')]
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print('FAILED', failed)
sys.exit(1 if failed else 0)
'''


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs os.fork')
def test_each_module_imports_first_in_a_fresh_interpreter():
    order = sorted(MODULES, key=lambda m: (layer_of(m), m))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=osp.dirname(osp.abspath(PKG)))
    proc = subprocess.run([sys.executable, '-c', _CHILD, *order], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
