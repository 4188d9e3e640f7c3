"""``--resume`` checks more than shapes (issue 20, item 6): a changed model config of identical shapes is refused
naming the key (allowed with ``--resume-allow-config-change``), a finished run says so, a weights-only export is a
clear error.

A real (micro) TransVAE, the fault drill's model, so that RoPE ``theta`` and the DC shortcut are real config keys
that change no tensor shape.
"""
import os.path as osp
import subprocess

import pytest

import tiny_vae_fixtures as tv
from projects.fault_drill.fault_drill.lib import DRILL_MODEL
from transvae.apis import train_cli
from transvae.engine.resume_checks import model_config_diff, model_config_from_text

EXTRA = (f'\nmodel = {DRILL_MODEL!r}\n' + tv.TINY_DIST_DATA_CFG
         + '\nval_dataloader = None\nval_cfg = None\nval_evaluator = None\n')


@pytest.fixture(scope='module')
def run2(tmp_path_factory):
    """A config of the micro TransVAE and its checkpoint at iteration 2 (of 2)."""
    d = tmp_path_factory.mktemp('resume_checks')
    cfg = tv.write_config(str(d / 'transvae.py'), max_iters=2, val_interval=100, ckpt_interval=2, extra=EXTRA)
    train_cli.main([cfg, '--work-dir', str(d / 'wd')])
    return d, cfg, str(d / 'wd' / 'iter_2.pth')


def _resume(cfg: str, ckpt: str, wd, *extra: str) -> None:
    train_cli.main([cfg, '--work-dir', str(wd), '--resume', ckpt, *extra])


def test_changed_rope_theta_refused_naming_the_key(run2):
    """A real `tools/train.py` process: exit 1, one `error:` line naming the key and both values, nothing trained."""
    d, cfg, ckpt = run2
    wd = d / 'theta'
    proc = subprocess.run([tv.PYTHON, 'tools/train.py', cfg, '--work-dir', str(wd), '--resume', ckpt, '--max-iters',
                           '3', '--cfg-options', 'model.arch.pe_cfg.theta=100.0'], cwd=tv.REPO,
                          env=tv.subprocess_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and 'model.arch.pe_cfg.theta: 10000.0 -> 100.0' in errors[0], proc.stderr[-2000:]
    assert '--resume-allow-config-change' in errors[0] and 'Traceback' not in proc.stderr
    assert not (wd / 'iter_3.pth').exists()


@pytest.mark.parametrize('option, key', [
    ('model.arch.latent_shortcut=False', 'model.arch.latent_shortcut: True -> False'),
    ('model.encoder.down_cfg.type=ConvPixelUnshuffleDown', "model.encoder.down_cfg.type: 'DCDownsample' -> "
                                                           "'ConvPixelUnshuffleDown'"),
])
def test_dc_shortcut_off_refused(run2, option, key):
    d, cfg, ckpt = run2
    wd = d / 'dc'
    with pytest.raises(SystemExit) as info:
        _resume(cfg, ckpt, wd, '--max-iters', '3', '--cfg-options', option)
    assert str(info.value.code).startswith('error: ') and key in str(info.value.code), info.value.code
    assert not (wd / 'iter_3.pth').exists()


def test_changed_config_allowed_with_the_flag(run2):
    d, cfg, ckpt = run2
    wd = d / 'allowed'
    _resume(cfg, ckpt, wd, '--max-iters', '3', '--resume-allow-config-change', '--cfg-options',
            'model.arch.pe_cfg.theta=100.0')
    resumed = tv.load_ckpt(str(wd / 'iter_3.pth'))
    assert resumed['meta']['iter'] == 3
    assert model_config_from_text(resumed['meta']['cfg'])['arch']['pe_cfg']['theta'] == 100.0
    with pytest.raises(SystemExit):  # the flag without --resume is a usage error
        train_cli.parse_args([cfg, '--resume-allow-config-change'])


def test_finished_run_says_so_and_trains_nothing(run2, capsys):
    d, cfg, ckpt = run2
    wd = d / 'finished'
    _resume(cfg, ckpt, wd)  # returns normally: exit status 0
    out = capsys.readouterr().out
    assert 'nothing to train' in out and 'iteration 2 of 2' in out and '--max-iters' in out
    assert not list(wd.glob('iter_*.pth'))
    with pytest.raises(SystemExit) as info:  # a smaller --max-iters than already trained: an error
        _resume(cfg, ckpt, wd, '--max-iters', '1')
    assert 'beyond the end of the schedule (1)' in str(info.value.code)
    assert not list(wd.glob('iter_*.pth'))


def test_safetensors_export_cannot_be_resumed(run2):
    d, cfg, ckpt = run2
    from transvae.engine.checkpoint_io import export_safetensors, load_checkpoint_file
    st = str(d / 'weights.safetensors')
    export_safetensors(load_checkpoint_file(ckpt), st)
    with pytest.raises(SystemExit) as info:
        _resume(cfg, st, d / 'st', '--max-iters', '3')
    msg = str(info.value.code)
    assert msg.startswith(f'error: {st} holds weights only') and 'load_from' in msg and 'init_model' in msg, msg
    assert 'KeyError' not in msg and not osp.exists(d / 'st' / 'iter_3.pth')


def test_model_config_text_parsed_without_running_it(tmp_path):
    marker = tmp_path / 'RAN'
    text = (f"import os\nos.system('touch {marker}')\nmodel = dict(type='VAE', arch=dict(widths=[8, 16], "
            "pe_cfg=dict(type='RoPE2D', theta=1e4)), x=(1, 2), f=open('/etc/passwd'))\n")
    old = model_config_from_text(text)
    assert not marker.exists()
    assert old['arch']['pe_cfg']['theta'] == 1e4 and old['x'] == [1, 2] and old['f'] == "open('/etc/passwd')"
    new = dict(old, arch=dict(widths=[8, 16], pe_cfg=dict(type='RoPE2D', theta=10000)))  # 1e4 == 10000
    assert model_config_diff(old, new) == []
    new['arch']['widths'] = [8, 32]
    assert model_config_diff(old, new) == ['model.arch.widths: [8, 16] -> [8, 32]']
    assert model_config_from_text('model = ') is None and model_config_from_text(None) is None
