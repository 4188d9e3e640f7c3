"""Interoperability with the official hustvl/LightningDiT: checkpoint conversion, the column-first sin-cos table, and
(with ``LIGHTNINGDIT_OFFICIAL_REPO`` = a checkout of the reference) forward, transport and samples equal to 1e-5.

The first tests need no official code: a synthetic checkpoint in the official layout (keys named by hand here) goes
through the converter and the CLI."""
from __future__ import annotations

import math
import os

import pytest
import torch

from projects.lightningdit.lightningdit.models import (ColumnFirstSinCosAPE, OfficialCheckpointError,
                                                       column_first_sincos_table)
from projects.lightningdit.lightningdit.models.official_checkpoint import convert_official_checkpoint
from transvae.engine.checkpoint_io import load_weights
from transvae.registry import MODELS

OFFICIAL_REPO = os.environ.get('LIGHTNINGDIT_OFFICIAL_REPO')


def test_column_first_table_by_hand():
    """D = 8 (two frequencies 1 and 1/100), grid 2 x 3: token n = 3 y + x holds [sin x, sin x/100, cos x, cos x/100,
    sin y, sin y/100, cos y, cos y/100]; the core SinCosAPE holds the row (y) half first."""
    table = column_first_sincos_table(8, (2, 3))
    for y in range(2):
        for x in range(3):
            want = [math.sin(x), math.sin(x / 100), math.cos(x), math.cos(x / 100),
                    math.sin(y), math.sin(y / 100), math.cos(y), math.cos(y / 100)]
            assert table[3 * y + x].tolist() == pytest.approx(want, abs=1e-12)
    zeros = torch.zeros(1, 6, 8)
    ours = ColumnFirstSinCosAPE(8).embed_tokens(zeros, (2, 3))[0]
    core = MODELS.build(dict(type='SinCosAPE', embed_dims=8)).embed_tokens(zeros, (2, 3))[0]
    assert torch.allclose(ours, table.float(), atol=1e-6)
    assert not torch.allclose(ours, core, atol=1e-2)
    # the core table is the same four blocks, row half first, built with the grid transposed
    core_t = MODELS.build(dict(type='SinCosAPE', embed_dims=8)).embed_tokens(torch.zeros(1, 6, 8), (3, 2))[0]
    assert torch.allclose(ours, core_t.reshape(3, 2, 8).transpose(0, 1).reshape(6, 8), atol=1e-6)


# ---------------------------------------------------------------------------------- a synthetic official checkpoint
#: our key prefix -> the official one, written out here independently of the library's map
TO_OFFICIAL = {'y_embedder.table.': 'y_embedder.embedding_table.', 'final_layer.norm.': 'final_layer.norm_final.'}


def _official_layout(grid: int = 4, seed: int = 0) -> tuple[dict, torch.nn.Module]:
    """A random DiT (depth 2, width 32, 2 heads, patch 2, 4 channels, 5 classes) and its weights in the official
    layout: renamed keys, the column-first ``pos_embed`` of the grid and the EVA RoPE buffers."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(type='LightningDiT', arch=None, depth=2, embed_dims=32, num_heads=2, patch_size=2,
                              in_channels=4, num_classes=5, ape_cfg=dict(type='ColumnFirstSinCosAPE')))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    sd = {}
    for k, v in model.state_dict().items():
        for ours, theirs in TO_OFFICIAL.items():
            k = k.replace(ours, theirs) if k.startswith(ours) else k
        sd[k.replace('.ffn.', '.mlp.')] = v.clone()
    sd['pos_embed'] = column_first_sincos_table(32, (grid, grid)).float().unsqueeze(0)
    ang = model.rope.get_angles((grid, grid)).repeat_interleave(2, dim=-1)
    sd['feat_rope.freqs_cos'], sd['feat_rope.freqs_sin'] = ang.cos(), ang.sin()
    return sd, model.eval()


def test_converter_round_trip_and_loader(tmp_path):
    sd, model = _official_layout()
    src, out = str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth')
    live = {k: v if k == 'pos_embed' or k.startswith('feat_rope') else v + 1 for k, v in sd.items()}
    torch.save({'model': live, 'ema': sd, 'opt': {}}, src)
    info = convert_official_checkpoint(src, out, num_heads=2)
    assert info['weights'] == 'ema' and max(info['table_max_abs_diff'].values()) < 1e-6
    cfg = info['model']
    assert cfg['latent_size'] == 8 and cfg['backbone']['num_classes'] == 5
    assert cfg['sampler'] == dict(type='EulerODESampler', num_grid_points=250, shift=0.3)
    assert cfg['guidance']['guided_channels'] == 3 and cfg['guidance']['scale'] == 1.0
    flow = MODELS.build(cfg)
    load_weights(flow, out, allow_partial=False)  # what tools/test.py does with the converted checkpoint
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 5])
    with torch.no_grad():
        assert torch.equal(flow.eval().backbone(x, t, y), model(x, t, y))
    # the config file written beside it builds the same model
    from mmengine.config import Config
    assert Config.fromfile(info['config_out']).model == Config(dict(model=cfg)).model
    # --model picks the live weights; an existing output is refused
    from transvae.utils.output_paths import OutputPathError
    with pytest.raises(OutputPathError, match='exists'):
        convert_official_checkpoint(src, out, num_heads=2)
    assert convert_official_checkpoint(src, str(tmp_path / 'live.pth'), weights='model',
                                       num_heads=2)['weights'] == 'model'
    ckpt = torch.load(str(tmp_path / 'live.pth'), weights_only=True)
    assert torch.equal(ckpt['state_dict']['backbone.y_embedder.table.weight'],
                       sd['y_embedder.embedding_table.weight'] + 1)


def test_converter_refuses_bad_keys_and_a_row_first_table(tmp_path):
    sd, _ = _official_layout()
    bad = dict(sd)
    bad['blocks.0.attn.bogus.weight'] = torch.zeros(3)
    del bad['blocks.1.norm2.weight']
    bad['blocks.0.mlp.w3.bias'] = torch.zeros(7)
    src = str(tmp_path / 'bad.pt')
    torch.save({'ema': bad}, src)
    with pytest.raises(OfficialCheckpointError) as e:
        convert_official_checkpoint(src, str(tmp_path / 'x.pth'), num_heads=2)
    msg = str(e.value)
    assert 'unknown key(s): blocks.0.attn.bogus.weight' in msg and 'blocks.1.norm2.weight' in msg
    assert 'blocks.0.mlp.w3.bias (7,) -> blocks.0.ffn.w3.bias (32,)' in msg
    assert not os.path.exists(tmp_path / 'x.pth') and not os.path.exists(tmp_path / 'x_config.py')
    # a key rename is not enough: the row-first (core) table in pos_embed is refused, not silently transposed
    rows = dict(sd)
    rows['pos_embed'] = MODELS.build(dict(type='SinCosAPE', embed_dims=32)).embed_tokens(torch.zeros(1, 16, 32), (4, 4))
    torch.save({'ema': rows}, src)
    with pytest.raises(OfficialCheckpointError, match='pos_embed differs from the fixed table'):
        convert_official_checkpoint(src, str(tmp_path / 'x.pth'), num_heads=2)
    # a bare state dict (a released file) with DDP's 'module.' prefix converts; --ema does not apply to it
    torch.save({f'module.{k}': v for k, v in sd.items()}, src)
    assert convert_official_checkpoint(src, str(tmp_path / 'bare.pth'), num_heads=2)['weights'] == 'state dict'
    with pytest.raises(OfficialCheckpointError, match='bare state dict'):
        convert_official_checkpoint(src, str(tmp_path / 'bare2.pth'), weights='ema', num_heads=2)
    torch.save({'model': sd}, src)
    with pytest.raises(OfficialCheckpointError, match="no 'ema' weights"):
        convert_official_checkpoint(src, str(tmp_path / 'bare2.pth'), weights='ema', num_heads=2)
    # an arch whose size is not the checkpoint's
    torch.save({'ema': sd}, src)
    with pytest.raises(OfficialCheckpointError, match="depth 2, width 32, patch 2; arch 'B/2' is depth 12"):
        convert_official_checkpoint(src, str(tmp_path / 'x.pth'), arch='LightningDiT-B/2')


def test_converter_cli(tmp_path, capsys):
    """The CLI: a refusal is one ``error:`` line (exit 1, no traceback); a conversion prints the written config."""
    from projects.lightningdit.tools.convert_official_checkpoint import main
    sd, _ = _official_layout()
    src = str(tmp_path / 'official.pt')
    torch.save({'ema': sd, 'config': {'model': {'model_type': 'LightningDiT-XL/1'}}}, src)
    with pytest.raises(SystemExit) as e:  # exits with the one line as its message (Python prints it, status 1)
        main([src, str(tmp_path / 'o.pth')])
    assert str(e.value.code).startswith('error: ') and '\n' not in str(e.value.code)
    assert 'depth 2, width 32' in str(e.value.code) and 'LightningDiT-XL/1' not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / 'missing.pt'), str(tmp_path / 'o.pth'), '--arch', 'XL/1'])
    assert e.value.code == f'error: checkpoint not found: {tmp_path / "missing.pt"}'
    torch.save({'ema': sd, 'config': {'sample': {'num_sampling_steps': 50, 'sampling_method': 'heun2',
                                                 'cfg_scale': 6.7, 'cfg_interval_start': 0.11}}}, src)
    from projects.lightningdit.lightningdit.models.official_checkpoint import convert_official_checkpoint
    info = convert_official_checkpoint(src, str(tmp_path / 'o.pth'), num_heads=2)
    assert info['model']['sampler'] == dict(type='HeunODESampler', num_grid_points=50, shift=0.0)  # its default: 0
    assert info['model']['guidance'] == dict(type='ClassifierFreeGuidance', scale=6.7, interval_start=0.11,
                                             guided_channels=3)
    assert "test_evaluator = dict(latent_multiplier=0.18215)" in info['config_text']  # the reference's default
    # --base-config: a config tools/test.py runs directly (the Fig. 6 config's data / evaluation, the converted model)
    from mmengine.config import Config
    fig6 = os.path.join(os.path.dirname(__file__), '..', 'configs',
                        'lightningdit-b1_transvae-l-f16d32_32xb32-200k_in1k.py')
    main([src, str(tmp_path / 'b.pth'), '--num-heads', '2', '--base-config', fig6])
    assert 'model config -> ' in capsys.readouterr().out
    cfg = Config.fromfile(str(tmp_path / 'b_config.py'))
    assert cfg.model.backbone.ape_cfg == dict(type='ColumnFirstSinCosAPE') and cfg.model.backbone.depth == 2
    assert 'arch' in cfg.model.backbone and cfg.model.backbone.arch is None  # the base's B/1 replaced, not merged
    assert cfg.test_report.type == 'GenerationFIDReport' and cfg.test_evaluator.latent_multiplier == 0.18215
    with pytest.raises(SystemExit) as e:
        main([src, str(tmp_path / 'c.pth'), '--num-heads', '2', '--base-config', str(tmp_path / 'nope.py')])
    assert e.value.code == f'error: base config not found: {tmp_path / "nope.py"}'


# ------------------------------------------------------------------------------------------ against the official code
@pytest.fixture(scope='module')
def official_diffs():
    if not OFFICIAL_REPO:
        pytest.skip('LIGHTNINGDIT_OFFICIAL_REPO is not set: the comparison against the official LightningDiT needs a '
                    'checkout of https://github.com/hustvl/LightningDiT (set the variable to its folder)')
    from projects.lightningdit.lightningdit.official_reference import run_checks
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # width-64 matmuls: a second thread only waits (minutes instead of seconds when shared)
    try:
        return run_checks(OFFICIAL_REPO, grid_points=25)[0]
    finally:
        torch.set_num_threads(threads)


def test_equal_to_the_official_code(official_diffs):
    """Converted official weights: forward (two configurations), transport terms, Euler / Heun samples with and
    without the 3-channel CFG, each within 1e-5 of the official code."""
    from projects.lightningdit.lightningdit.official_reference import CONTROLS, TOLERANCE
    checks = {k: v for k, v in official_diffs.items() if k not in CONTROLS}
    assert len(checks) == 8
    assert {k: v for k, v in checks.items() if not v <= TOLERANCE} == {}


def test_controls_differ_from_the_official_code(official_diffs):
    """Each protocol option matters: a key rename only, steps read as grid points, CFG on every channel."""
    from projects.lightningdit.lightningdit.official_reference import CONTROLS, TOLERANCE
    assert {k: official_diffs[k] for k in CONTROLS if not official_diffs[k] > 10 * TOLERANCE} == {}
