"""The evaluation protocol of tools/test.py (transvae.evaluation.protocol / layouts): parsing, dataset layouts, test
configs, and the capabilities that replaced type-name matching (a new registered class takes part unchanged)."""
import pytest
from mmengine.config import Config
from mmengine.dataset import BaseDataset

from transvae.datasets import ImageFolderDataset
from transvae.datasets.transforms import CenterCrop
from transvae.evaluation import protocol as pr
from transvae.evaluation.layouts import DatasetSpec, accepts_argument, parse_datasets, set_max_images
from transvae.models.autoencoders import VAEGAN
from transvae.registry import DATASETS, MODELS, TRANSFORMS


@DATASETS.register_module(name='TestMyFolderDataset', force=True)
class MyFolderDataset(ImageFolderDataset):
    """A user's image-folder variant (forwards everything to ImageFolderDataset)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)


@DATASETS.register_module(name='TestListDataset', force=True)
class ListDataset(BaseDataset):
    """An mmengine dataset without ``max_images``."""

    def load_data_list(self) -> list:
        return [dict(i=i) for i in range(5)]


@TRANSFORMS.register_module(name='TestMyCenterCrop', force=True)
class MyCenterCrop(CenterCrop):
    """A centre crop under another name."""


@MODELS.register_module(name='TestMyVAEGAN', force=True)
class MyVAEGAN(VAEGAN):
    """A VAEGAN subclass registered under another name."""


def test_model_spec_and_labels():
    assert pr.parse_model_spec('a/b.py') == ('a/b.py', None)
    assert pr.parse_model_spec('a/b.py:none') == ('a/b.py', None)
    assert pr.parse_model_spec('a/b.py:w/iter_2.pth') == ('a/b.py', 'w/iter_2.pth')
    with pytest.raises(ValueError, match='CFG.py'):
        pr.parse_model_spec('a/b.yaml')
    assert pr.model_labels(['x/a.py', 'y/a.py']) == ['a', 'a#2']
    assert pr.model_labels(['x/a.py', 'y/a.py'], ['p', 'q']) == ['p', 'q']
    with pytest.raises(ValueError, match='unique'):
        pr.model_labels(['x/a.py', 'y/a.py'], ['p', 'p'])


def test_parse_datasets_layouts():
    assert parse_datasets(['imagenet=v', 'COCO17=c', 'photos=p', 'mine=m']) == [
        DatasetSpec('imagenet', 'imagenet', 'v'), DatasetSpec('COCO17', 'coco', 'c'),
        DatasetSpec('photos', 'photos', 'p'), DatasetSpec('mine', 'auto', 'm')]
    for bad in (['x'], ['=p'], ['a=p', 'a=q']):
        with pytest.raises(ValueError):
            parse_datasets(bad)


@pytest.mark.parametrize('typ, key', [('ImageFolderDataset', 'max_images'), ('SamplePhotosDataset', 'max_images'),
                                      ('TestMyFolderDataset', 'max_images'), (MyFolderDataset, 'max_images'),
                                      ('TestListDataset', 'indices')])
def test_set_max_images_by_capability(typ, key):
    ds = dict(type=typ)
    set_max_images(ds, 3)
    assert ds == dict(type=typ, **{key: 3})


def test_accepts_argument_follows_kwargs():
    assert accepts_argument(MyFolderDataset, 'max_images') and accepts_argument(MyFolderDataset, 'data_root')
    assert not accepts_argument(ListDataset, 'max_images')


def test_describe_pipeline():
    assert pr.describe_pipeline(pr.eval_pipeline(256)) == (
        256, 'resize the short side to 256 px (bicubic, antialiased), then centre crop 256x256')
    size, text = pr.describe_pipeline([dict(type='LoadImageRGB'), dict(type='TestMyCenterCrop', size=64),
                                       dict(type='RandomFlip'), dict(type='PackVAEInputs')])
    assert size == 64 and text == 'centre crop 64x64, then RandomFlip'
    assert pr.describe_pipeline([dict(type='LoadImageRGB')]) == (None, 'as loaded (no resize / crop)')


ARCH = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4, attn_levels=[],
            mid_attn=False)


@pytest.mark.parametrize('typ', ['VAEGAN', 'TestMyVAEGAN'])
def test_strip_training_modules(typ):
    model = dict(type=typ, arch=ARCH, encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
                 discriminator=dict(type='PatchGANDiscriminator', ndf=8), gan_loss=dict(type='HingeGANLoss'))
    cfg = Config(dict(model=model))
    assert pr.strip_training_modules(cfg) == ['discriminator', 'gan_loss']
    assert cfg.model.discriminator is None and cfg.model.gan_loss is None
    built = MODELS.build(cfg.model)
    assert built.discriminator is None
    vae = Config(dict(model=dict(type='VAE', arch=ARCH, encoder=dict(type='CNNEncoder'),
                                 decoder=dict(type='CNNDecoder'))))
    assert pr.strip_training_modules(vae) == []


def test_expand_settings_dataset_major(tmp_path):
    specs = [DatasetSpec('imagenet', 'imagenet', 'a'), DatasetSpec('coco', 'coco', 'b')]
    settings = pr.expand_settings(None, specs, [512, 256])
    assert [(s.name, s.resolution) for s in settings] == [('imagenet', 256), ('imagenet', 512), ('coco', 256),
                                                          ('coco', 512)]
    assert settings[0].tag == 'imagenet_256' and settings[0].dataset is None
    (photos, ) = pr.expand_settings(None, None, [], preset='cpu')  # the bundled photos at 128
    assert (photos.name, photos.layout, photos.resolution) == ('photos', 'photos', 128)
    base = dict(type='SamplePhotosDataset', data_root='data/sample_photos', pipeline=pr.eval_pipeline(256))
    (own, ) = pr.expand_settings(base, None, [64], max_images=2)
    assert own.name == 'config:sample_photos' and own.dataset['max_images'] == 2
    assert [t.get('size') for t in own.dataset['pipeline']] == [None, 64, 64, None]
    assert base['pipeline'][1]['size'] == 256  # the model's config is left as it was
    (cfg_own, ) = pr.expand_settings(base, None, [])
    assert cfg_own.resolution is None and cfg_own.tag == 'config_sample_photos_cfg'


def test_setting_config(tmp_path):
    base = Config(dict(model=dict(type='VAE'), test_dataloader=dict(batch_size=4, num_workers=3),
                       visualizer=dict(type='Visualizer')))
    s = pr.EvalSetting('photos', 'photos', 'data/sample_photos', 96)
    cfg, removed = pr.setting_config(base, 'm', s, 'ck.pth', work_dir=str(tmp_path), max_images=5, num_workers=0,
                                     show_dir=str(tmp_path / 'show'))
    assert removed == [] and cfg.load_from == 'ck.pth' and cfg.work_dir == str(tmp_path / 'm' / 'photos_96')
    dl = cfg.test_dataloader
    assert dl.batch_size == 4 and dl.num_workers == 0 and dl.sampler.round_up is False
    assert dl.dataset == dict(type='SamplePhotosDataset', data_root='data/sample_photos', split='val',
                              test_mode=True, pipeline=pr.eval_pipeline(96), max_images=5)
    assert [e['type'] for e in cfg.test_evaluator] == ['PSNRMetric', 'SSIMMetric', 'LPIPSMetric', 'FIDMetric']
    show = str(tmp_path / 'show' / 'm' / 'photos_96')
    assert cfg.custom_hooks[-1] == dict(type='SaveReconstructionsHook', out_dir=show)
    assert cfg.visualizer.name.startswith('visualizer_m_photos_96_') and 'name' not in base.visualizer
    assert base.test_dataloader == dict(batch_size=4, num_workers=3)  # the loaded config is not modified
