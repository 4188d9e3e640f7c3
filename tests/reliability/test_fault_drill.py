"""The CI subset of the fault drill (``fault_drill.py --quick``): every fault survived, none lost."""
import pytest

from projects.fault_drill.fault_drill import drills


@pytest.fixture(scope='module')
def drill_rows(tmp_path_factory):
    rows = drills.run_drills(list(drills.QUICK), str(tmp_path_factory.mktemp('drill')), quick=True, attempts=1, seed=0)
    print('\n' + drills.table(rows))
    return rows


def test_every_quick_drill_ran(drill_rows):
    assert len(drill_rows) >= len(drills.QUICK)
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
