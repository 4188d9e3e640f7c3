import platform

import pytest

from transvae.utils import allocator


def test_disabled_by_zero(monkeypatch):
    monkeypatch.setenv(allocator.ENV_VAR, '0')
    assert allocator.tune_cpu_allocator() is None


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc only')
def test_tunes_glibc_and_reports_it(monkeypatch):
    monkeypatch.delenv(allocator.ENV_VAR, raising=False)
    assert allocator.tune_cpu_allocator() == allocator.DEFAULT_THRESHOLD_MB
    assert allocator.tune_cpu_allocator(256) == 256  # idempotent, last call wins
    state = allocator.allocator_state()
    assert state == dict(allocator='glibc malloc', mmap_threshold_mb=256)
    allocator.tune_cpu_allocator()  # leave the tools' default in place for later tests
