"""Checkpoint and .safetensors files that lie about themselves: each is an error naming the file and the lie.

Real malformed files on disk (``fault_drill.remote.malformed_files``): empty, truncated, a plain list, a zip bomb, a
short tensor record, safetensors headers that are not JSON / claim 10 GB in 1 KB / overlap / disagree with their
shapes, and right-shaped tensors of the wrong dtype (int, bool, overflowing float64, a string).
"""
import os.path as osp

import pytest
import torch

import tiny_vae_fixtures as tv
from projects.fault_drill.fault_drill.remote import good_checkpoint, malformed_files, write_safetensors
from transvae.apis import extract_latents_cli, test_cli
from transvae.apis import init_model
from transvae.apis.convert import checkpoint_to_safetensors
from transvae.engine.checkpoint_compat import CheckpointFileError, CheckpointMismatchError, dtype_problem
from transvae.engine.checkpoint_io import export_safetensors, load_checkpoint_file
from transvae.utils.errors import UserInputError


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('malformed')
    cfg = tv.write_config(str(d / 'tiny.py'))
    sd = tv.TinyVAE(ch=8).state_dict()
    return cfg, sd, malformed_files(str(d / 'files'), sd)


def test_each_malformed_file_is_a_clear_error(files):
    cfg, _, cases = files
    assert len(cases) >= 17
    for name, (path, expect) in cases.items():
        with pytest.raises(CheckpointMismatchError) as info:  # CheckpointFileError is one (tools: `error: ...`)
            init_model(cfg, path)
        msg = str(info.value)
        assert expect in msg and path in msg and len(msg) < 1000, (name, msg)
        if isinstance(info.value, CheckpointFileError):  # the file itself is bad: also a ValueError
            assert isinstance(info.value, ValueError)
            with pytest.raises(CheckpointFileError):
                load_checkpoint_file(path)


def test_tools_report_a_malformed_file_in_one_line(files, tmp_path):
    cfg, _, cases = files
    with pytest.raises(SystemExit) as info:
        test_cli.main([cfg, cases['zero-byte .pth'][0], '--work-dir', str(tmp_path / 'wd')])
    assert str(info.value.code).startswith('error: ') and 'is empty' in str(info.value.code)
    with pytest.raises(SystemExit) as info:
        extract_latents_cli.main([cfg, cases['.pth holding a plain list'][0], '--out',
                                              str(tmp_path / 'lat'), '--device', 'cpu', '--num-workers', '0'])
    assert str(info.value.code).startswith('error: ') and 'holds a list' in str(info.value.code)
    assert not osp.exists(tmp_path / 'lat') or not any(p.suffix == '.pt' for p in (tmp_path / 'lat').iterdir())
    for key in ('truncated zip .pth', 'a string where the model has a tensor'):  # the converter's command line
        with pytest.raises(UserInputError) as info:  # prints such an error as its `error:` line
            checkpoint_to_safetensors(cases[key][0], str(tmp_path / 'out.safetensors'))
        assert cases[key][0] in str(info.value)
    assert not osp.exists(tmp_path / 'out.safetensors')


def test_precision_changes_load(tmp_path):
    """fp16 / bf16 exports and in-range float64 load into the fp32 model (documented: load_state_dict casts)."""
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    sd = tv.TinyVAE(ch=8).state_dict()
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        low = {k: v.to(dtype) for k, v in sd.items()}
        path = str(tmp_path / f'{str(dtype)[6:]}.safetensors')
        export_safetensors({'state_dict': low}, path)
        model = init_model(cfg, path)
        assert all(torch.equal(model.state_dict()[k], low[k].float()) for k in sd), dtype
    path = good_checkpoint(str(tmp_path / 'f64.pth'), {k: v.double() for k, v in sd.items()})
    assert init_model(cfg, str(tmp_path / 'f64.pth')) is not None and path


def test_dtype_rule():
    f32, i64 = torch.zeros(2), torch.zeros(2, dtype=torch.int64)
    assert dtype_problem(torch.ones(2, dtype=torch.float16), f32) is None
    assert dtype_problem(torch.tensor([1e300, float('inf')], dtype=torch.float64), f32) is not None
    assert dtype_problem(torch.tensor([1.0, float('nan')], dtype=torch.float64), f32) is None  # finite fits; NaN is NaN
    assert dtype_problem(torch.tensor([7], dtype=torch.int32), i64) is None
    assert 'do not fit' in dtype_problem(torch.tensor([2**40]), torch.zeros(1, dtype=torch.int32))
    assert 'vs model' in dtype_problem(i64, f32) and 'vs model' in dtype_problem(f32, i64)
    assert 'vs model' in dtype_problem(torch.zeros(2, dtype=torch.bool), f32)
    assert 'vs model' in dtype_problem(torch.zeros(2, dtype=torch.complex64), f32)


def test_safetensors_metadata_and_entry_checks(tmp_path):
    entry = {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}
    bad_meta = write_safetensors(str(tmp_path / 'meta.safetensors'), {'__metadata__': {'a': 1}, 'w': entry}, b'\0' * 4)
    with pytest.raises(CheckpointFileError, match='__metadata__'):
        load_checkpoint_file(bad_meta)
    odd = write_safetensors(str(tmp_path / 'dtype.safetensors'),
                            {'w': {'dtype': 'F128', 'shape': [1], 'data_offsets': [0, 16]}}, b'\0' * 16)
    with pytest.raises(CheckpointFileError, match="unsupported dtype 'F128'"):
        load_checkpoint_file(odd)
    neg = write_safetensors(str(tmp_path / 'neg.safetensors'),
                            {'w': {'dtype': 'F32', 'shape': [-1], 'data_offsets': [0, 4]}}, b'\0' * 4)
    with pytest.raises(CheckpointFileError, match='non-negative'):
        load_checkpoint_file(neg)
    short = str(tmp_path / 'short.safetensors')
    open(short, 'wb').write(b'\x01\x02')
    with pytest.raises(CheckpointFileError, match='not a safetensors file .2 bytes'):
        load_checkpoint_file(short)


def test_legacy_format_payload_refused_naming_its_global(tmp_path):
    """A pre-1.6 (non-zip) torch file: the payload is refused with the global it imports, not called malformed."""
    from projects.fault_drill.fault_drill.remote import Payload
    from transvae.engine.checkpoint_io import UntrustedCheckpointError
    marker, path = str(tmp_path / 'PWNED'), str(tmp_path / 'legacy.pth')
    torch.save({'state_dict': {}, 'meta': {'x': Payload(marker)}}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(UntrustedCheckpointError, match='posix.system'):
        load_checkpoint_file(path)
    assert not osp.exists(marker)
