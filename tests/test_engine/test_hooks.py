"""TimeBudgetHook and ReconstructionGridHook inside a real (tiny) Runner."""

import numpy as np
import pytest
from PIL import Image

import tiny_vae_fixtures as tv

from transvae.engine.hooks import time_budget_hook
from transvae.engine.hooks.time_budget_hook import TimeBudgetHook


class FakeClock:
    """time.time() advancing 1 s per call."""

    def __init__(self):
        self.t = 1000.0

    def time(self):
        self.t += 1.0
        return self.t


def test_lr_scale():
    hook = TimeBudgetHook(seconds=100, decay_fraction=0.2, min_lr_ratio=0.1)
    assert hook.lr_scale(0) == 1.0 and hook.lr_scale(80) == 1.0
    assert hook.lr_scale(90) == pytest.approx(0.55) and hook.lr_scale(100) == pytest.approx(0.1)
    assert hook.lr_scale(500) == pytest.approx(0.1)
    assert TimeBudgetHook(seconds=10, decay_fraction=0).lr_scale(9.9) == 1.0
    with pytest.raises(ValueError):
        TimeBudgetHook(seconds=0)


def test_time_budget_stops_cleanly_and_survives_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(time_budget_hook, 'time', FakeClock())
    hooks = [dict(type='TimeBudgetHook', seconds=6, decay_fraction=0.5, min_lr_ratio=0.0)]
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=100, val_interval=50, ckpt_interval=50,
                          custom_hooks=hooks)
    # constant scheduled lr so the decay is visible on its own
    opts = dict(param_scheduler=[dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)])
    wd = tmp_path / 'wd'
    runner = tv.build_runner(cfg, str(wd), opts)
    runner.train()
    # before_train reads the clock twice -> 1 s elapsed; each iteration adds 1 s; the 5th iteration reaches 6 s
    assert runner.iter == 5 and runner.train_loop.max_iters == 5
    assert (wd / 'last_checkpoint').read_text().endswith('iter_5.pth')  # save_last fired at the early end
    assert runner.message_hub.get_scalar('val/tiny/psnr') is not None  # the final validation ran
    lrs = runner.message_hub.get_scalar('train/lr').data[0]
    # decay window = last 3 s: 1.0 at <= 3 s elapsed, then 1 - (e - 3) / 3
    assert list(np.round(np.array(lrs) / 1e-3, 4)) == [1.0, 1.0, 1.0, round(2 / 3, 4), round(1 / 3, 4)]
    assert runner.optim_wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(1e-3)  # undecayed value kept
    left = runner.message_hub.get_scalar('train/budget_left_s').data[0]
    assert left[-1] == 0.0
    ckpt = tv.load_ckpt(str(wd / 'iter_5.pth'))
    assert ckpt['message_hub']['runtime_info']['time_budget_elapsed'] == pytest.approx(6.0)

    # resuming a spent budget trains no further
    runner2 = tv.build_runner(cfg, str(wd), dict(resume=True, **opts))
    runner2.train()
    assert runner2.iter == 5 and not (wd / 'iter_6.pth').exists()


def test_reconstruction_grid_hook(tmp_path):
    hooks = [dict(type='ReconstructionGridHook', interval=2, at_iters=[0, 1], num_images=3, max_side=16,
                  size_divisor=4)]
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=2, custom_hooks=hooks)
    wd = tmp_path / 'wd'
    runner = tv.build_runner(cfg, str(wd))
    runner.train()
    for k in (0, 1, 2):
        img = np.asarray(Image.open(wd / 'vis' / f'iter_{k}.png'))
        assert img.shape == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2, 3)
    a = np.asarray(Image.open(wd / 'vis' / 'iter_0.png'))
    b = np.asarray(Image.open(wd / 'vis' / 'iter_2.png'))
    assert np.array_equal(a[:, :18], b[:, :18])  # same inputs every time
    assert not np.array_equal(a[:, 18:], b[:, 18:])  # reconstructions changed with training
    hook = next(h for h in runner.hooks if type(h).__name__ == 'ReconstructionGridHook')
    runner.model.train()
    assert hook.draw(runner, 'again.png').endswith('again.png') and runner.model.training  # train mode restored

    test_runner = tv.build_runner(cfg, str(tmp_path / 'twd'), dict(load_from=str(wd / 'iter_2.pth')))
    test_runner.test()
    assert (tmp_path / 'twd' / 'vis' / 'test_iter_2.png').is_file()


def test_runners_built_in_the_same_second_do_not_share_state(tmp_path):
    """MMEngine reuses a MessageHub / logger / visualizer of the same `<config>_<timestamp>` name; ours never do."""
    cfg_path = tv.write_config(str(tmp_path / 'cfg.py'))
    first = tv.build_runner(cfg_path, str(tmp_path / 'a'))
    first.message_hub.update_info('time_budget_elapsed', 123.0)
    second = tv.build_runner(cfg_path, str(tmp_path / 'b'))
    assert second.experiment_name != first.experiment_name
    assert second.message_hub is not first.message_hub
    assert second.message_hub.get_info('time_budget_elapsed') is None
    assert second.visualizer is not first.visualizer


def test_time_budget_true_eta_and_disabled(tmp_path, monkeypatch):
    """Under a budget the loop's end (hence mmengine's ETA) is the predicted end, not the max_iters upper bound;
    ``seconds=None`` is a fixed-iteration run."""
    hook = TimeBudgetHook(seconds=60)
    assert hook.predicted_end(9, 30.0, 1.5, 10**5) == 30  # 10 done + 20 more
    assert hook.predicted_end(9, 0.1, 1.5, 10**5) == 11  # the next iteration always runs
    assert hook.predicted_end(9, 1e4, 1.0, 50) == 50  # never past the configured max_iters
    monkeypatch.setattr(time_budget_hook, 'time', FakeClock())
    seen = []

    class Probe:  # records the loop's end after every iteration (lowest priority: after the budget hook)
        priority = 100

        def __getattr__(self, name):
            return lambda *a, **k: None

        def after_train_iter(self, runner, *a, **k):
            seen.append((runner.iter, runner.max_iters))

    hooks = [dict(type='TimeBudgetHook', seconds=8, decay_fraction=0.0)]
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=100, val_interval=50, ckpt_interval=50,
                          custom_hooks=hooks)
    runner = tv.build_runner(cfg, str(tmp_path / 'wd'))
    runner._hooks.append(Probe())
    runner.train()
    assert runner.iter == seen[-1][1] < 100
    assert all(it + 1 < end <= 10 for it, end in seen[:-1])  # a prediction, never the upper bound 100

    off = [dict(type='TimeBudgetHook', seconds=None)]
    cfg = tv.write_config(str(tmp_path / 'off.py'), max_iters=3, val_interval=3, ckpt_interval=3, custom_hooks=off)
    runner = tv.build_runner(cfg, str(tmp_path / 'off'))
    runner.train()
    assert runner.iter == 3 and 'train/budget_left_s' not in runner.message_hub.log_scalars
