"""Safe checkpoint loading: a pickled payload never runs; mmengine checkpoints need no unpickling; .safetensors."""
import os
import os.path as osp
import pickle
import subprocess

import pytest
import torch

import rel_helpers as rh
import tiny_vae_fixtures as tv
from transvae.apis import test_cli
from transvae.apis.convert import checkpoint_to_safetensors
from transvae.engine.checkpoint_io import (UntrustedCheckpointError, export_safetensors, load_checkpoint_file,
                                           trusted_checkpoints)

FLAG = 'TORCH_FORCE_' + 'NO_WEIGHTS_ONLY_LOAD'  # spelt in two parts so the grep below does not find this file


class _Payload:
    """Unpickling this calls os.system(touch MARKER): what a hostile checkpoint does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def _hostile_checkpoint(path: str, marker: str) -> str:
    model = tv.TinyVAE(ch=8)
    torch.save({'state_dict': model.state_dict(), 'meta': {'note': _Payload(marker)}}, path)
    return path


def test_payload_refused_by_tools_test_init_model_and_plain_torch_load(tmp_path):
    marker = str(tmp_path / 'PWNED')
    ckpt = _hostile_checkpoint(str(tmp_path / 'evil.pth'), marker)
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))

    with pytest.raises(SystemExit) as info:  # the tool's main, in this process (no interpreter start-up)
        test_cli.main([cfg, ckpt, '--work-dir', str(tmp_path / 'wd')])
    msg = str(info.value.code)
    assert msg.startswith('error: Refusing to load') and '--trust-checkpoint' in msg and 'posix.system' in msg, msg
    assert not osp.exists(marker)

    from transvae.apis import init_model
    with pytest.raises(UntrustedCheckpointError, match='trusted=True'):
        init_model(cfg, ckpt)
    assert not osp.exists(marker)
    with pytest.raises(pickle.UnpicklingError):  # no process-wide flag: plain torch stays safe after our imports
        torch.load(ckpt)
    assert not osp.exists(marker)
    assert FLAG not in os.environ


def test_trusted_opt_in_is_explicit(tmp_path):
    marker = str(tmp_path / 'RAN')
    ckpt = _hostile_checkpoint(str(tmp_path / 'evil.pth'), marker)
    load_checkpoint_file(ckpt, trusted=True)  # the explicit opt-in really unpickles (here: runs the payload)
    assert osp.exists(marker)
    os.remove(marker)
    with trusted_checkpoints():
        load_checkpoint_file(ckpt)
    assert osp.exists(marker)
    os.remove(marker)
    with pytest.raises(UntrustedCheckpointError):  # the block ended
        load_checkpoint_file(ckpt)
    assert not osp.exists(marker)


def test_no_file_sets_the_weights_only_flag():
    offenders = []
    for root, dirs, files in os.walk(tv.REPO):
        dirs[:] = [d for d in dirs if d not in ('.git', '.venv', 'work_dirs', 'data', '__pycache__', 'docs')]
        for f in files:
            if f.endswith(('.py', '.sh', '.cfg', '.toml', '.ini', '.yml', '.yaml', '.txt')):
                p = osp.join(root, f)
                with open(p, encoding='utf-8', errors='ignore') as fh:
                    if FLAG in fh.read():
                        offenders.append(osp.relpath(p, tv.REPO))
    assert offenders == []


def test_runner_checkpoints_need_no_unpickling_and_resume(tmp_path):
    """A TransVAERunner checkpoint has no global outside torch's weights_only set; resume restores the hub."""
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=2, ckpt_interval=2)
    runner = rh.build_runner(cfg, str(tmp_path / 'wd'))
    runner.train()
    path = str(tmp_path / 'wd' / 'iter_2.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    ckpt = load_checkpoint_file(path)
    from mmengine.logging import HistoryBuffer
    assert isinstance(ckpt['message_hub']['log_scalars']['train/lr'], HistoryBuffer)
    assert ckpt['meta']['config_file'].endswith('tiny.py')
    resumed = rh.build_runner(cfg, str(tmp_path / 'wd'), cfg_options=dict(resume=True, train_cfg=dict(max_iters=3)))
    resumed.train()
    assert resumed.iter == 3
    assert len(resumed.message_hub.get_scalar('train/lr').data[0]) == 3


def test_legacy_pickled_checkpoint_refused_with_conversion_hint(tmp_path):
    from mmengine.logging import HistoryBuffer
    path = str(tmp_path / 'legacy.pth')
    torch.save({'state_dict': tv.TinyVAE().state_dict(), 'meta': {},
                'message_hub': {'log_scalars': {'loss': HistoryBuffer([1.0], [1])}}}, path)
    with pytest.raises(UntrustedCheckpointError, match='to_safetensors.py'):
        load_checkpoint_file(path)
    assert isinstance(load_checkpoint_file(path, trusted=True)['message_hub']['log_scalars']['loss'], HistoryBuffer)


def test_safetensors_export_tool_and_init_model(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=1, val_interval=1, ckpt_interval=1)
    runner = rh.build_runner(cfg, str(tmp_path / 'wd'))
    runner.train()
    src = str(tmp_path / 'wd' / 'iter_1.pth')
    out = str(tmp_path / 'tiny.safetensors')
    num_tensors, path = checkpoint_to_safetensors(src, out)
    assert num_tensors > 0 and path == out
    from safetensors import safe_open
    with safe_open(out, framework='pt') as f:
        assert 'transvae_meta' in f.metadata()
    from transvae.apis import init_model
    a, b = init_model(cfg, src), init_model(cfg, out)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(a.reconstruct(x), b.reconstruct(x))
    assert load_checkpoint_file(out)['meta']['config_file'].endswith('tiny.py')
    # the command line, for real: an existing output is not overwritten without --force, said in one `error:` line
    proc = subprocess.run([tv.PYTHON, 'tools/model_converters/to_safetensors.py', src, out], cwd=tv.REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f'error: {out} exists (use --force to overwrite)'
