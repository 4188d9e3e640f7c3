"""Every registered encoder / decoder: an mmengine ``BaseModule`` whose ``init_cfg`` is applied by
``init_weights()``, while ``init_weights()`` without one keeps the construction-time weights bit for bit (what the
Runner calls before training, so seeded results do not move); its forward listed as segments (stem ... head); round
trip at the architecture's CPU size."""
from __future__ import annotations

import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModule

import slot_registry  # noqa: F401 (registers every module)
from transvae.engine.config_surgery import apply_preset
from transvae.models.backbones import EncoderBase
from transvae.registry import MODELS
from transvae.utils.complexity import build_encoder_decoder

pytestmark = pytest.mark.usefixtures('one_thread')

MODELS_DIR = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs', '_base_', 'models')
# a registered backbone family -> the architecture base that builds it (its `cpu` preset gives the micro size)
FAMILY_CONFIG = {'TransVAE': 'transvae-t_f16d32.py', 'CNN': 'cnn-vae-t_f16d32.py', 'ViT': 'vit-vae-t_f16d32.py',
                 'Swin': 'swin-vae-t_f16d32.py'}
# every registered EncoderBase, except the adapters (they wrap a diffusers model: tests/test_models/test_adapters)
ENCODERS = sorted(n for n, c in MODELS.module_dict.items()
                  if isinstance(c, type) and issubclass(c, EncoderBase) and not n.startswith('Diffusers'))


def _pair(encoder: str):
    family = encoder[:-len('Encoder')]
    assert family in FAMILY_CONFIG, f'{encoder}: add its architecture base to FAMILY_CONFIG in {__file__}'
    cfg = Config.fromfile(osp.join(MODELS_DIR, FAMILY_CONFIG[family]))
    apply_preset(cfg, 'cpu')
    assert cfg.model.encoder.type == encoder
    return cfg


@pytest.mark.parametrize('encoder', ENCODERS)
def test_backbone_is_basemodule_and_init_weights_keeps_weights(encoder):
    cfg = _pair(encoder)
    torch.manual_seed(0)
    enc, dec = build_encoder_decoder(cfg.model)
    for m in (enc, dec):
        assert isinstance(m, BaseModule)
        names = [seg.name for seg in m.segments()]  # forward is its segments: what exact tiling cuts
        assert m.is_staged and len(set(names)) == len(names) and names[0] == 'stem' and names[-1] == 'head'
        before = {k: v.clone() for k, v in m.state_dict().items()}
        m.init_weights()
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    f = enc.downsample_factor
    x = torch.rand(1, 3, 2 * f, f) * 2 - 1
    z = enc(x)
    assert z.shape == (1, 2 * enc.latent_channels, 2, 1)
    assert dec(z[:, :enc.latent_channels]).shape == x.shape


@pytest.mark.parametrize('encoder', ENCODERS)
def test_init_cfg_is_applied(encoder):
    cfg = _pair(encoder)
    init = [dict(type='Constant', layer='Conv2d', val=0.25, bias=0.0)]
    cfg.model.encoder.init_cfg = init
    cfg.model.decoder.init_cfg = init
    enc, dec = build_encoder_decoder(cfg.model)
    for m in (enc, dec):
        m.init_weights()
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
        assert convs and all(bool((c.weight == 0.25).all()) for c in convs)
