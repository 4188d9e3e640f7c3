"""Command-line values and output paths (issue 20, items 3, 5, 8): a zero / negative / non-numeric value is an error
naming the option or key, an output never overwrites or writes into an input, random weights are never evaluated
by accident.

Real files and real processes: the tools run as subprocesses where the exit status and the one error line matter,
in-process (``main``) elsewhere; the read-only folder is a read-only tmpfs mount (root) or a chmod-ed folder.
"""
import argparse
import contextlib
import hashlib
import json
import os
import os.path as osp
import subprocess
import tempfile
import time

import pytest

import tiny_vae_fixtures as tv
from transvae.apis import extract_latents_cli, test_cli, train_cli
from transvae.apis.convert import checkpoint_to_safetensors
from transvae.engine.config_validation import ConfigValueError, check_config_values
from transvae.utils.cli_types import key_value, non_negative_int, positive_float, positive_int
from transvae.utils.output_paths import OutputPathError, check_outputs


def _sha(path) -> str:
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def _tool(args: list, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([tv.PYTHON] + args, cwd=tv.REPO, env=tv.subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if 'error:' in ln]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny config and its 1-iteration checkpoint (trained in-process)."""
    d = tmp_path_factory.mktemp('cli_inputs')
    cfg = tv.write_config(str(d / 'tiny.py'), max_iters=1, val_interval=1, ckpt_interval=1)
    train_cli.main([cfg, '--work-dir', str(d / 'wd')])
    return d, cfg, str(d / 'wd' / 'iter_1.pth')


# ---------------------------------------------------------------------------------------------------------------------
# item 5: numbers
# ---------------------------------------------------------------------------------------------------------------------
def test_cli_types():
    assert positive_int('3') == 3 and non_negative_int('0') == 0 and positive_float('1e-4') == 1e-4
    for fn, bad in ((positive_int, '0'), (positive_int, '-5'), (positive_int, 'ten'), (positive_int, '1.5'),
                    (non_negative_int, '-1'), (positive_float, '0'), (positive_float, 'nan'), (positive_float, 'inf')):
        with pytest.raises(argparse.ArgumentTypeError, match='expected'):
            fn(bad)


def test_key_value_overrides():
    """``--cfg-options`` of the benchmark and planner: literals parsed, other values kept as strings, an entry
    without ``=`` refused by argparse (exit 2, the option named) rather than a traceback or a silent drop."""
    assert key_value('model.width=64') == ('model.width', 64)
    assert key_value('a=[1, 2]') == ('a', [1, 2]) and key_value('b=None') == ('b', None)
    assert key_value('c=bf16') == ('c', 'bf16') and key_value('d=x=y') == ('d', 'x=y')
    for bad in ('model.width', '=3'):
        with pytest.raises(argparse.ArgumentTypeError, match='expected key=value'):
            key_value(bad)
    cfg = 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py'
    for tool in ('tools/analysis_tools/plan_run.py', 'tools/analysis_tools/benchmark.py'):
        proc = _tool([tool, cfg, '--cfg-options', 'model.width'])
        errors = _error_lines(proc)
        assert proc.returncode == 2 and len(errors) == 1 and '--cfg-options' in errors[0], (tool, proc.stderr)
        assert 'Traceback' not in proc.stderr, tool


def test_max_iters_zero_is_an_error_naming_the_option(tmp_path):
    """`--max-iters 0` used to start the full schedule: now exit 2, one error line, no work dir."""
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    wd = tmp_path / 'wd'
    proc = _tool(['tools/train.py', cfg, '--work-dir', str(wd), '--max-iters', '0'])
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = _error_lines(proc)
    assert len(errors) == 1 and '--max-iters' in errors[0] and "'0'" in errors[0], proc.stderr
    assert 'Traceback' not in proc.stderr and not wd.exists()


def test_non_numeric_config_value_is_an_error_naming_the_key(tmp_path, capsys):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    wd = tmp_path / 'wd'
    with pytest.raises(SystemExit) as info:
        train_cli.main([cfg, '--work-dir', str(wd), '--cfg-options', 'train_cfg.max_iters=ten'])
    msg = str(info.value.code)
    assert msg.startswith("error: config key train_cfg.max_iters = 'ten': expected a positive integer"), msg
    assert '\n' not in msg and not wd.exists()


@pytest.mark.parametrize('argv, needle', [
    (['--max-iters', '-5'], '--max-iters'), (['--batch-size', '0'], '--batch-size'),
    (['--epochs', '0'], '--epochs'), (['--resolution', '0'], '--resolution'), (['--seed', '-1'], '--seed'),
    (['--resume', '--resume-lr', '0'], '--resume-lr'),
])
def test_train_numeric_options(tmp_path, capsys, argv, needle):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    with pytest.raises(SystemExit) as info:
        train_cli.main([cfg, '--work-dir', str(tmp_path / 'wd')] + argv)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err and not (tmp_path / 'wd').exists()


@pytest.mark.parametrize('option, needle', [
    ('train_dataloader.batch_size=-1', 'train_dataloader.batch_size = -1'),
    ('optim_wrapper.optimizer.lr=abc', "optim_wrapper.optimizer.lr = 'abc'"),
    ('train_cfg.val_interval=0', 'train_cfg.val_interval = 0'),
    ('val_dataloader.num_workers=-2', 'val_dataloader.num_workers = -2'),
])
def test_config_values_named(tmp_path, option, needle):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    with pytest.raises(SystemExit) as info:
        train_cli.main([cfg, '--work-dir', str(tmp_path / 'wd'), '--cfg-options', option])
    assert str(info.value.code).startswith('error: config key ' + needle), info.value.code
    assert not (tmp_path / 'wd').exists()


def test_config_value_table_multi_optimizer_and_bool():
    cfg = dict(optim_wrapper=dict(generator=dict(optimizer=dict(lr=1e-4)), discriminator=dict(optimizer=dict(lr=0))),
               train_cfg=dict(max_iters=10))
    with pytest.raises(ConfigValueError, match='optim_wrapper.discriminator.optimizer.lr = 0'):
        check_config_values(cfg)
    with pytest.raises(ConfigValueError, match='train_cfg.max_iters = True'):
        check_config_values(dict(train_cfg=dict(max_iters=True)))
    check_config_values(dict(train_cfg=dict(max_iters=10, val_interval=5), randomness=dict(seed=None),
                             default_hooks=dict(checkpoint=dict(interval=-1, max_keep_ckpts=-1))))


def test_test_and_extract_numeric_options(capsys):
    cases = ((test_cli, ['a.py', 'b.pth', '--max-images', '0'], '--max-images'),
             (test_cli, ['a.py', 'b.pth', '--batch-size', '-1'], '--batch-size'),
             (test_cli, ['--models', 'a.py', '--resolutions', '256', '0'], '--resolutions'),
             (extract_latents_cli, ['a.py', 'b.pth', '--out', 'o', '--shard-size', '0'], '--shard-size'),
             (extract_latents_cli, ['a.py', 'b.pth', '--out', 'o', '--rank', '2', '--world-size', '2'], '--rank 2'))
    for tool, argv, needle in cases:
        with pytest.raises(SystemExit) as info:
            tool.parse_args(argv)
        assert info.value.code == 2
        assert needle in capsys.readouterr().err, (tool, argv)


# ---------------------------------------------------------------------------------------------------------------------
# item 3: outputs never destroy inputs
# ---------------------------------------------------------------------------------------------------------------------
def test_check_outputs_links_and_data_roots(tmp_path):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'weights')
    os.symlink(ckpt, tmp_path / 'link.pth')
    os.link(ckpt, tmp_path / 'hard.pth')
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'a.png').write_bytes(b'png')
    for out in ('link.pth', 'hard.pth', 'sub/../ckpt.pth'):
        with pytest.raises(OutputPathError, match='is the checkpoint'):
            check_outputs({'--out': str(tmp_path / out)}, {'checkpoint': str(ckpt)})
    with pytest.raises(OutputPathError, match='inside the data root'):
        check_outputs({'--show-dir': str(data / 'vis')}, {'data root': str(data)}, dirs=['--show-dir'])
    with pytest.raises(OutputPathError, match='contains the data root'):
        check_outputs({'--out': str(tmp_path)}, {'data root': str(data)}, dirs=['--out'], exclusive=['--out'])
    with pytest.raises(OutputPathError, match='same path'):
        check_outputs({'--out': str(tmp_path / 'r.json'), '--report': str(tmp_path / 'r.json')}, {})
    with pytest.raises(OutputPathError, match='is a directory'):
        check_outputs({'--out': str(data)}, {})
    with pytest.raises(OutputPathError, match='is a file'):
        check_outputs({'--out': str(ckpt / 'x.json')}, {})
    check_outputs({'--out': str(tmp_path / 'new' / 'deeper' / 'r.json'), '--work-dir': str(tmp_path)},
                  {'checkpoint': str(ckpt), 'data root': str(data), 'remote': 'https://x/y.pth', 'none': 'none'},
                  dirs=['--work-dir'])
    assert sorted(os.listdir(tmp_path)) == ['ckpt.pth', 'data', 'hard.pth', 'link.pth']  # nothing created


def test_test_out_over_checkpoint_refused_byte_identical(trained):
    d, cfg, ckpt = trained
    before = _sha(ckpt)
    proc = _tool(['tools/test.py', cfg, ckpt, '--out', ckpt, '--work-dir', str(d / 'twd')])
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = _error_lines(proc)
    assert len(errors) == 1 and errors[0].startswith('error: --out') and 'is the checkpoint' in errors[0]
    assert _sha(ckpt) == before and 'metrics:' not in proc.stdout
    os.symlink(ckpt, d / 'alias.json')
    for argv in (['--report', str(d / 'alias.json')], ['--out', cfg]):
        with pytest.raises(SystemExit) as info:
            test_cli.main([cfg, ckpt, '--work-dir', str(d / 'twd')] + argv)
        assert str(info.value.code).startswith('error: --'), info.value.code
    assert _sha(ckpt) == before


@contextlib.contextmanager
def _read_only_dir(parent: str):
    """A folder nothing can be created in: a read-only tmpfs (root ignores permission bits), else chmod 0o555."""
    path = tempfile.mkdtemp(dir=parent)
    if os.geteuid() == 0:
        ok = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', path],
                            capture_output=True).returncode == 0
        if not ok:
            pytest.skip('running as root without permission to mount a read-only tmpfs')
        try:
            yield path
        finally:
            subprocess.run(['umount', path], capture_output=True)
    else:
        os.chmod(path, 0o555)
        try:
            yield path
        finally:
            os.chmod(path, 0o755)


def test_out_into_read_only_dir_refused_before_evaluation(trained):
    d, cfg, ckpt = trained
    with _read_only_dir(str(d)) as ro:
        t0 = time.time()
        with pytest.raises(SystemExit) as info:
            test_cli.main([cfg, ckpt, '--out', osp.join(ro, 'sub', 'metrics.json'), '--work-dir', str(d / 'ro_wd')])
        elapsed = time.time() - t0
    msg = str(info.value.code)
    assert msg.startswith('error: --out') and (ro in msg), msg
    assert not (d / 'ro_wd').exists()  # refused before the runner (its work dir) was built
    assert elapsed < 30, elapsed


def test_extract_latents_out_must_not_be_or_hold_the_data_root(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    for i in range(3):
        (data / f'img_{i}.png').write_bytes(bytes([i]) * 10)
    snapshot = {p: _sha(data / p) for p in os.listdir(data)}
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    for out, needle in ((data, 'is the data root'), (tmp_path, 'contains the'), (data / 'lat', 'inside the data root')):
        with pytest.raises(SystemExit) as info:
            extract_latents_cli.main([cfg, 'none', '--out', str(out), '--data-root', str(data), '--random-weights'])
        assert str(info.value.code).startswith('error: --out') and needle in str(info.value.code), info.value.code
    assert {p: _sha(data / p) for p in os.listdir(data)} == snapshot  # no lock file, no shard, nothing changed


def test_to_safetensors_never_over_its_input(trained, tmp_path):
    _, _, ckpt = trained
    st = str(tmp_path / 'm.safetensors')
    assert checkpoint_to_safetensors(ckpt, st)[1] == st
    before = _sha(st)
    os.symlink(st, tmp_path / 'alias.safetensors')
    with pytest.raises(OutputPathError, match='is the checkpoint'):
        checkpoint_to_safetensors(st, str(tmp_path / 'alias.safetensors'), force=True)
    assert _sha(st) == before


# ---------------------------------------------------------------------------------------------------------------------
# item 8: evaluating nothing
# ---------------------------------------------------------------------------------------------------------------------
def test_none_checkpoint_refused_random_weights_labelled(trained):
    d, cfg, ckpt = trained
    for argv in ([cfg, 'none'], [cfg]):
        with pytest.raises(SystemExit) as info:
            test_cli.main(argv + ['--work-dir', str(d / 'none_wd')])
        assert 'random weights' in str(info.value.code) and '--random-weights' in str(info.value.code)
    with pytest.raises(SystemExit):
        test_cli.parse_args([cfg, ckpt, '--random-weights'])  # both: ambiguous
    out, md = d / 'random.json', d / 'random.md'
    test_cli.main([cfg, '--random-weights', '--work-dir', str(d / 'none_wd'), '--out', str(out), '--report', str(md)])
    report = json.loads(out.read_text())
    assert 'RANDOM WEIGHTS' in report['title'] and report['random_weights'] == ['tiny']
    assert report['weights']['tiny']['source'] == 'random' and 'random' in report['warnings'][0]
    assert md.read_text().splitlines()[0].startswith('# Evaluation report — RANDOM WEIGHTS')


def test_extract_latents_none_needs_random_weights_and_records_the_weights(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    with pytest.raises(SystemExit, match='--random-weights'):
        extract_latents_cli.main([cfg, 'none', '--out', str(tmp_path / 'lat')])
    assert not (tmp_path / 'lat').exists() or not any(n.startswith('latents_') for n in os.listdir(tmp_path / 'lat'))


def test_weights_info_own_weights():
    from transvae.evaluation.protocol import check_weights, weights_info
    assert weights_info(dict(type='VAE', encoder=dict(init_cfg=dict(type='Pretrained', checkpoint='e.pth'))),
                        None)['source'] == 'pretrained'
    assert check_weights(dict(type='VAE'), 'a.pth', False, 'c.py')['source'] == 'checkpoint'
    with pytest.raises(ValueError, match='random weights'):
        check_weights(dict(type='VAE'), 'none', False, 'c.py')
