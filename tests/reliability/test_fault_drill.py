"""The CI subset of the fault drill (tools/analysis_tools/fault_drill.py --quick): every fault survived, none lost."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _drill():
    spec = importlib.util.spec_from_file_location('fault_drill', osp.join(REPO, 'tools', 'analysis_tools',
                                                                          'fault_drill.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def drill_rows(tmp_path_factory):
    drill = _drill()
    rows = drill.run_drills(list(drill.QUICK), str(tmp_path_factory.mktemp('drill')), quick=True, attempts=1, seed=0)
    print('\n' + drill.table(rows))
    return rows


def test_every_quick_drill_ran(drill_rows):
    drill = _drill()
    assert len(drill_rows) >= len(drill.QUICK)
    assert not [r for r in drill_rows if 'drill crashed' in r['check']]


@pytest.mark.parametrize('fault', ['SIGKILL at a random', 'SIGKILL during a checkpoint write', 'disk full',
                                   'unreadable files in training', 'unreadable files in tools/test.py',
                                   'unreadable files in extract_latents', 'NaN / Inf', 'malformed configs',
                                   'odd image inputs'])
def test_fault_survived_nothing_lost(drill_rows, fault):
    rows = [r for r in drill_rows if fault in r['fault']]
    assert rows, fault
    for r in rows:
        assert r['survived'] == r['attempts'] and r['lost'] == 0, r
