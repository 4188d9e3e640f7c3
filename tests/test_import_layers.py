"""The package is layered and acyclic: every import inside ``transvae/`` points down, never up nor sideways.

:data:`LAYERS` lists the tiers bottom to top; a tier is a tuple of sibling groups (a group is a sub-package or a
module, named by its dotted prefix). A module may import

* its own group (a sub-package imports its own modules), and
* every group of a lower tier;

never a sibling group of its own tier (``models.backbones`` and ``models.losses`` know nothing of each other, nor do
``datasets`` and ``evaluation``'s siblings), never a higher tier, and never a package that contains it (a module of
``transvae.models`` importing ``transvae.models`` imports its own package's ``__init__``, which imports it: an
upward import, and a cycle once the ``__init__`` is what runs first). A group may also be the package ``__init__``
files that sit above their own sub-packages (:data:`INIT_ONLY`: ``transvae.models`` re-exports the VAE from
``models.autoencoders``).

The static scan reads every ``import`` of every module, including the ones hidden inside functions and under
``TYPE_CHECKING`` (Python does not fail on those, but the layering still runs upward). The same import graph must
have no cycle (:func:`test_no_import_cycle`; a function-local import closes a cycle as well as a top-level one: it
only hides it until the function runs). A last check imports each module first, in a forked child of an
interpreter that has loaded only third-party packages, so a circle that depends on which module is imported first
fails too.

Around the library: no library module starts or loads a file by path (``tools/*.py`` call the library, not the
reverse), and no tool (``tools/``, ``projects/*/tools``) edits ``sys.path``: tools run from the repository root,
where ``projects.<name>`` imports (``python -m``, or ``PYTHONPATH=.`` as the project scripts and pytest set it).
"""
from __future__ import annotations

import ast
import os
import os.path as osp
import re
import subprocess
import sys
import tokenize

import pytest

PKG = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'transvae')

#: tiers, bottom to top; each a tuple of sibling groups that may not import one another (module docstring)
LAYERS: list[tuple[str, ...]] = [
    ('transvae.registry', ),
    ('transvae.utils', ),
    # the leaves of the model: no model import at all
    ('transvae.models.layers', 'transvae.models.distributions', 'transvae.models.pretrained', 'transvae.models.utils'),
    ('transvae.models.blocks', ),
    ('transvae.models.backbones', 'transvae.models.losses', 'transvae.models.discriminators',
     'transvae.models.foundation', 'transvae.models.data_preprocessors'),
    ('transvae.models.autoencoders', 'transvae.models.averaged_model'),
    ('transvae.models.adapters', ),
    ('transvae.models', ),  # the package __init__ only (INIT_ONLY): re-exports; a new sub-package gets its own entry
    ('transvae.datasets', ),
    ('transvae.evaluation', 'transvae.visualization'),
    ('transvae.engine', ),
    ('transvae.apis', ),  # the one entry layer: loading, runners, register_all_modules, the command lines
    ('transvae.benchmark', ),  # loads its targets through apis.init_model
]

#: groups that hold a package's ``__init__`` only, not the modules under it (it sits above its own sub-packages)
INIT_ONLY = {'transvae.models'}
#: modules placed in a group by their exact name
EXACT = {'transvae': 'transvae.registry'}  # the root __init__ (the version only), as low as it gets


def group_of(module: str) -> str:
    """The group (an entry of :data:`LAYERS`) of a dotted module name: :data:`EXACT`, else the longest prefix."""
    if module in EXACT:
        return EXACT[module]
    best = max((p for tier in LAYERS for p in tier
                if module == p or (module.startswith(p + '.') and p not in INIT_ONLY)), key=len, default=None)
    if best is None:
        raise KeyError(f'{module} is in no layer: add it to LAYERS in {__file__}')
    return best


def layer_of(module: str) -> int:
    """Tier index of a dotted module name (0 = bottom)."""
    group = group_of(module)
    return next(i for i, tier in enumerate(LAYERS) if group in tier)


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
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
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


def layering_problem(module: str, target: str) -> str | None:
    """Why ``module`` may not import ``target`` (both in :data:`MODULES`), or ``None`` when it may."""
    if module.startswith(target + '.'):
        return f'imports {target}, its own package (above it: that __init__ imports it)'
    src, dst = group_of(module), group_of(target)
    if src == dst:
        return None
    if layer_of(dst) > layer_of(module):
        return f'(layer {layer_of(module)}, {src}) imports {target} (layer {layer_of(dst)}, {dst}): upward'
    if layer_of(dst) == layer_of(module):
        return f'({src}) imports {target} ({dst}): a sibling of its layer {layer_of(module)}'
    return None


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over :data:`MODULES` (imports at any depth)."""
    return {m: {t for t, _ in imports_of(m, path) if t in MODULES and t != m} for m, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


MODULES = all_modules()


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)
    groups = [p for tier in LAYERS for p in tier]
    assert len(groups) == len(set(groups)), 'a group is in two tiers'


def test_no_upward_or_sibling_import():
    bad = []
    for m, path in MODULES.items():
        for target, line in imports_of(m, path):
            if target not in MODULES:
                bad.append(f'{osp.relpath(path)}:{line} imports {target}, which does not exist')
            elif (problem := layering_problem(m, target)) is not None:
                bad.append(f'{osp.relpath(path)}:{line}: {m} {problem}')
    assert not bad, 'imports against the layering (LAYERS in tests/test_import_layers.py):\n' + '\n'.join(bad)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, 'import cycles (every import counts, function-local ones too):\n' + '\n'.join(
        ' <-> '.join(c) for c in found)


def test_layer_rule_catches_upward_sibling_and_own_package_imports(tmp_path):
    """The scan is not vacuous: a model layer importing the engine, a dataset or its own package, and a backbone
    importing a loss, are all flagged (function-local imports included)."""
    f = tmp_path / 'x.py'
    f.write_text('def g():\n    from transvae.engine.fsdp import check_fsdp_model\n'
                 'from ...datasets.collate import is_empty_batch\n'
                 'from transvae.models import VAE\n')
    found = imports_of('transvae.models.layers.x', str(f))
    assert sorted(found) == [('transvae.datasets.collate', 3), ('transvae.engine.fsdp', 2), ('transvae.models', 4)]
    assert all(layering_problem('transvae.models.layers.attention', t) for t, _ in found)
    assert 'own package' in layering_problem('transvae.models.layers.attention', 'transvae.models')
    assert 'sibling' in layering_problem('transvae.models.backbones.cnn', 'transvae.models.losses.kl')
    assert 'sibling' in layering_problem('transvae.models.losses.kl', 'transvae.models.backbones.cnn')
    assert layering_problem('transvae.models.backbones.cnn', 'transvae.models.blocks') is None
    assert 'own package' in layering_problem('transvae.engine.runner', 'transvae.engine')


def test_cycle_scan_finds_a_cycle():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}, 'e': {'e'}}
    assert cycles(graph) == [['a', 'b', 'c']]


# ---------------------------------------------------------------------------------------------------------------------
# the tools and projects import the library and the project packages the proper way
# ---------------------------------------------------------------------------------------------------------------------
REPO = osp.dirname(osp.abspath(PKG))
_SYS_PATH_EDIT = re.compile(r'sys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\b|\[[^\]]*\]\s*=|\+?=[^=])')
#: files that still edit sys.path, each with the issue-21 part that removes the edit (drop the entry then)
KNOWN_SYS_PATH_EDITS: dict[str, str] = {}


def _tool_files() -> list[str]:
    out = []
    for top in [osp.join(REPO, 'tools')] + sorted(osp.join(REPO, 'projects', p, 'tools')
                                                  for p in os.listdir(osp.join(REPO, 'projects'))):
        for d, _, files in os.walk(top):
            out += [osp.join(d, f) for f in files if f.endswith('.py')]
    return sorted(out)


def _code_without_comments(path: str) -> str:
    """The file's code with comments dropped (strings kept: a generated child script counts too)."""
    with open(path, 'rb') as f:
        tokens = [t for t in tokenize.tokenize(f.readline) if t.type != tokenize.COMMENT]
    return tokenize.untokenize(tokens).decode('utf-8')


def test_tools_do_not_edit_sys_path():
    """Tools run from the repository root; ``projects.<name>`` imports from there (``python -m`` or ``PYTHONPATH=.``,
    as the project scripts and the pytest configuration do), so no tool edits ``sys.path``."""
    found = {osp.relpath(p, REPO) for p in _tool_files() if _SYS_PATH_EDIT.search(_code_without_comments(p))}
    new = sorted(found - set(KNOWN_SYS_PATH_EDITS))
    assert not new, f'tools that edit sys.path: {new}'
    assert not set(KNOWN_SYS_PATH_EDITS) - found, 'fixed: drop them from KNOWN_SYS_PATH_EDITS: ' + str(
        sorted(set(KNOWN_SYS_PATH_EDITS) - found))


def test_sys_path_scan_is_not_vacuous(tmp_path):
    f = tmp_path / 't.py'
    f.write_text('import sys\n# sys.path.insert(0, ROOT) in a comment does not count\nx = sys.path[0]\n')
    assert not _SYS_PATH_EDIT.search(_code_without_comments(str(f)))
    for edit in ('sys.path.insert(0, ROOT)', 'sys.path.append(ROOT)', 'sys.path = [ROOT]', 'sys.path += [ROOT]',
                 'sys.path[:0] = [ROOT]', 'CHILD = "sys.path.insert(0, {repo!r})"'):
        f.write_text(f'import sys\n{edit}\n')
        assert _SYS_PATH_EDIT.search(_code_without_comments(str(f))), edit


def _starts_a_file(node: ast.AST) -> str | None:
    """Why ``node`` starts (or loads) a Python file by its path, or ``None``."""
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, 'id', '')
        if name in ('spec_from_file_location', 'run_path', 'SourceFileLoader'):
            return f'{name}()'
        if any(isinstance(a, ast.Constant) and a.value == 'tools' for a in node.args):
            return "a path through 'tools'"
    return None


def test_library_starts_no_tool_by_path():
    """The library does not run or load ``tools/*.py`` (nor any file) by path: a tool calls the library, not back."""
    bad = []
    for m, path in MODULES.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        bad += [f'{osp.relpath(path, REPO)}:{n.lineno}: {why}' for n in ast.walk(tree)
                if (why := _starts_a_file(n)) is not None]
    assert not bad, 'library modules that start a file by path:\n' + '\n'.join(bad)


def test_start_scan_is_not_vacuous():
    tree = ast.parse("importlib.util.spec_from_file_location('t', osp.join(REPO, 'tools', 'test.py'))\n"
                     "cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py')]\nrunpy.run_path(p)\n")
    assert sorted(filter(None, map(_starts_a_file, ast.walk(tree)))) == [
        "a path through 'tools'", "a path through 'tools'", 'run_path()', 'spec_from_file_location()']


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
