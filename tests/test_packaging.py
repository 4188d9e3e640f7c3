"""A non-editable install works: build the wheel, install it (no deps) into an empty target, import every module.

Catches what an editable install hides: a package folder without ``__init__.py`` (find_packages drops it), data
files not declared, imports that only resolve from the repository root.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import subprocess
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def source_modules() -> list[str]:
    out = []
    for d, dirs, files in os.walk(osp.join(REPO, 'transvae')):
        dirs[:] = [x for x in dirs if x != '__pycache__']
        for f in files:
            if f.endswith('.py'):
                rel = osp.relpath(osp.join(d, f), REPO)[:-3].replace(os.sep, '.')
                out.append(rel[:-len('.__init__')] if rel.endswith('.__init__') else rel)
    return sorted(out)


_IMPORT_ALL = r'''
import importlib, os, sys
target = sys.argv[1]
sys.path.insert(0, target)
import transvae
assert transvae.__file__.startswith(target), transvae.__file__
bad = []
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception as e:
        bad.append(f'{name}: {type(e).__name__}: {e}')
print('\n'.join(bad) or 'all imported')
sys.exit(1 if bad else 0)
'''


def test_wheel_installs_and_imports_every_module(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md', 'pyproject.toml'):
        shutil.copy(osp.join(REPO, name), src / name)
    shutil.copytree(osp.join(REPO, 'requirements'), src / 'requirements')
    shutil.copytree(osp.join(REPO, 'transvae'), src / 'transvae', ignore=shutil.ignore_patterns('__pycache__'))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    subprocess.run(pip + ['wheel', '--no-deps', '--no-build-isolation', '-w', str(tmp_path / 'dist'), str(src)],
                   check=True, cwd=tmp_path, timeout=300)
    wheels = os.listdir(tmp_path / 'dist')
    assert len(wheels) == 1 and wheels[0].startswith('transvae-') and wheels[0].endswith('.whl'), wheels
    target = tmp_path / 'site'
    subprocess.run(pip + ['install', '--no-deps', '--target', str(target), str(tmp_path / 'dist' / wheels[0])],
                   check=True, cwd=tmp_path, timeout=300)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PYTHONPATH', None)
    proc = subprocess.run([sys.executable, '-c', _IMPORT_ALL, str(target), *source_modules()], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
