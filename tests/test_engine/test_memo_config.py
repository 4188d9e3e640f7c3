"""MemoConfig: mmengine's exact ``pretty_text``, formatted (yapf) once per distinct content, through the runner."""
from __future__ import annotations

import copy
import pickle

import mmengine.config.config as mm_config
from mmengine.config import Config

from transvae.engine.memo_config import MemoConfig

CFG = dict(model=dict(type='VAE', arch=dict(widths=[8, 16], depths=[1, 2]), loss=dict(weight=0.25)),
           train_cfg=dict(max_iters=3), work_dir='/tmp/x', names=('a', 'b'))


def _counting_format(monkeypatch) -> list:
    calls = []
    real = mm_config.FormatCode

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mm_config, 'FormatCode', counted)
    return calls


def test_same_text_formatted_once_and_again_after_any_change(monkeypatch):
    plain = Config(copy.deepcopy(CFG))
    ref = plain.pretty_text
    calls = _counting_format(monkeypatch)
    memo = MemoConfig.of(plain)
    assert isinstance(memo, MemoConfig) and MemoConfig.of(memo) is memo
    assert memo.pretty_text == ref and memo.pretty_text == ref and memo.dump() == ref
    assert len(calls) == 1
    memo.model.arch.depths[1] = 3  # a nested in-place change
    changed = memo.pretty_text
    assert changed != ref and changed == Config(memo.to_dict()).pretty_text and len(calls) == 3
    memo.train_cfg = dict(max_iters=4)  # a top-level assignment
    assert 'max_iters=4' in memo.pretty_text
    # copies (the runner deep-copies its config) and pickles keep the class and the exact text
    for other in (copy.deepcopy(memo), copy.copy(memo), pickle.loads(pickle.dumps(memo))):
        assert type(other) is MemoConfig and other.pretty_text == Config(memo.to_dict()).pretty_text


def test_unformatted_config_is_not_memoised():
    memo = MemoConfig.of(Config(copy.deepcopy(CFG), format_python_code=False))
    assert memo.pretty_text == Config(copy.deepcopy(CFG), format_python_code=False).pretty_text
    assert '_pretty_text_memo' not in memo.__dict__


def test_runner_of_build_runner_formats_its_config_once(tmp_path, monkeypatch):
    """``transvae.apis.entry.build_runner``: the runner's config is a MemoConfig; the logged config, the dumped file
    and the runtime info share one yapf pass, and the dumped file is mmengine's own text."""
    import tiny_vae_fixtures as tv

    from transvae.apis.entry import build_runner
    cfg = Config.fromfile(tv.write_config(str(tmp_path / 'tiny.py')))
    cfg.work_dir = str(tmp_path / 'wd')
    calls = _counting_format(monkeypatch)
    runner = build_runner(cfg)
    assert type(runner.cfg) is MemoConfig and len(calls) == 1
    dumped = (tmp_path / 'wd' / 'tiny.py').read_text()
    assert dumped == runner.cfg.pretty_text and len(calls) == 1
    monkeypatch.undo()
    assert dumped == Config(runner.cfg.to_dict()).pretty_text
