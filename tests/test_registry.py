"""``transvae.registry.resolve_type``: the one look-up from a config dict / type name / class to a registered class."""
from __future__ import annotations

import pytest
from mmengine.registry import Registry

from transvae.registry import DATA_SAMPLERS, FUNCTIONS, MODELS, RUNNERS, resolve_type


def test_resolves_dicts_names_classes_and_instances():
    from transvae.models.blocks import ResBlock
    assert resolve_type(dict(type='ResBlock', in_channels=8), MODELS) is ResBlock
    assert resolve_type('ResBlock', MODELS) is ResBlock
    assert resolve_type(ResBlock, MODELS) is ResBlock
    assert resolve_type(ResBlock(8), MODELS) is ResBlock
    assert resolve_type(dict(type='ResBlock'), MODELS) is resolve_type('transvae.ResBlock', MODELS)  # scoped name
    from mmengine.dataset import InfiniteSampler
    from mmengine.runner import FlexibleRunner
    assert resolve_type('InfiniteSampler', DATA_SAMPLERS) is InfiniteSampler  # found in mmengine's parent registry
    assert issubclass(resolve_type(dict(type='TransVAEFlexibleRunner'), RUNNERS), FlexibleRunner)


def test_unknown_names_say_what_is_registered():
    with pytest.raises(KeyError, match="'ResBlok' is not registered in the transvae::model registry. Did you mean: "
                                       'ResBlock'):
        resolve_type(dict(type='ResBlok'), MODELS)
    plain = Registry('plain thing')
    plain.register_module(name='Known', module=type('Known', (), {}))
    with pytest.raises(KeyError, match='Registered: Known'):
        resolve_type('Unknown', plain)
    for spec in (dict(type='ResBlok'), 'Unknown', dict(in_channels=8), None):
        assert resolve_type(spec, MODELS if spec != 'Unknown' else plain, missing_ok=True) is None


def test_a_registered_function_is_no_class():
    with pytest.raises(TypeError, match='names no class'):
        resolve_type('transvae_block_wrap_policy', FUNCTIONS)
    assert resolve_type('transvae_block_wrap_policy', FUNCTIONS, missing_ok=True) is None
    with pytest.raises(TypeError, match='names no class'):
        resolve_type(dict(in_channels=8), MODELS)  # no type at all
