"""One test per defect of issue 11 besides the checkpoint payload and the non-finite guard (own files)."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import rel_helpers as rh
import tiny_vae_fixtures as tv
from transvae.apis import test_cli, train_cli

NO_LPIPS = {'model.rec_loss.perceptual_cfg': None}


# -- 2: a checkpoint of another architecture ---------------------------------------------------------------------------
def test_other_architecture_refused_by_init_model_with_the_trained_config(tmp_path):
    from transvae.apis import init_model
    from transvae.engine.checkpoint_compat import CheckpointMismatchError
    cnn = init_model('configs/_base_/models/cnn-vae-micro_f8d16.py', cfg_options=NO_LPIPS)
    path = str(tmp_path / 'cnn.pth')
    torch.save({'state_dict': cnn.state_dict(),
                'meta': {'config_file': 'configs/experiments/cnn_vae.py', 'cfg': cnn.cfg.pretty_text}}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        init_model('configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py', path, cfg_options=NO_LPIPS)
    msg = str(info.value)
    assert "trained with config 'configs/experiments/cnn_vae.py'" in msg and 'encoder=CNNEncoder' in msg
    assert len(msg) < 1500  # was a 15 KB key dump


def test_other_architecture_refused_by_tools_test(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    other = tv.TinyVAE(ch=16)  # the config builds ch=8
    path = str(tmp_path / 'wide.pth')
    torch.save({'state_dict': other.state_dict(), 'meta': {'config_file': 'configs/wide_tiny.py'}}, path)
    with pytest.raises(SystemExit) as info:
        test_cli.main([cfg, path, '--work-dir', str(tmp_path / 'wd')])
    msg = str(info.value.code)
    assert msg.startswith('error: ') and "trained with config 'configs/wide_tiny.py'" in msg
    assert 'python tools/test.py configs/wide_tiny.py' in msg and len(msg) < 1500


# -- 4: skipped images reach the training log (default runtime registers the hook) --------------------------------------
def _image_folder(root, n=6, bad=('zero.png', 'text.png', 'trunc.png')):
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(osp.join(root, f'ok_{i}.png'))
    open(osp.join(root, bad[0]), 'wb').close()
    with open(osp.join(root, bad[1]), 'w') as f:
        f.write('not an image')
    with open(osp.join(root, 'ok_0.png'), 'rb') as f:
        head = f.read(60)
    with open(osp.join(root, bad[2]), 'wb') as f:
        f.write(head)
    return root


def test_training_log_counts_skipped_images(tmp_path):
    root = _image_folder(str(tmp_path / 'imgs'))
    extra = f'''
train_dataloader = dict(batch_size=3, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='transvae.skip_none_collate'),
    dataset=dict(type='ImageFolderDataset', data_root={root!r}, data_prefix='', layout='flat',
                 pipeline=[dict(type='LoadImageRGB'), dict(type='CenterCrop', size=16), dict(type='PackVAEInputs')]))
'''
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=3, val_interval=100, ckpt_interval=100, extra=extra)
    runner = rh.build_runner(cfg, str(tmp_path / 'wd'))
    runner.train()
    assert runner.message_hub.get_info('skipped_images/train_all_ranks') == 3  # 9 files, 3 unreadable, 1 epoch
    log = open(next(p for p in (tmp_path / 'wd').rglob('*.log'))).read()
    assert 'skipped image load(s); 3 in total over 3 distinct file(s)' in log


# -- 5: 16-bit images -----------------------------------------------------------------------------------------------
def test_dark_16bit_png_is_not_read_as_8bit(tmp_path):
    from transvae.apis.inference import to_image_tensor
    from transvae.datasets.transforms.loading import decode_image_rgb
    a = np.full((8, 8), 200, dtype=np.uint16)  # 200 / 65535: nearly black
    Image.fromarray(a).save(str(tmp_path / 'dark16.png'))
    assert decode_image_rgb(str(tmp_path / 'dark16.png')).max() <= 1  # was 200 (about 250x too bright)
    bright = Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16))
    assert bright.mode == 'I;16'
    x, _ = to_image_tensor(bright)  # was convert('RGB'): saturated at 1.0
    assert torch.allclose(x, torch.full_like(x, round(40000 * 255 / 65535) / 255))


# -- 6: API inputs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('bad, match', [
    (torch.zeros(0, 3, 16, 16), 'empty'), (torch.zeros(3, 0, 16), 'empty'), ([], 'empty list'),
    (np.zeros((0, 16, 3), np.uint8), 'empty'), (torch.full((3, 16, 16), float('nan')), 'NaN'),
    (torch.tensor([[[float('inf')]]]).expand(3, 8, 8), 'NaN / Inf'), ('/no/such/image.png', 'not found')])
def test_api_rejects_bad_inputs_clearly(bad, match):
    from transvae.apis.inference import to_image_tensor
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        to_image_tensor(bad)


def test_api_accepts_a_path(tmp_path):
    from transvae.apis.inference import to_image_tensor
    arr = np.random.default_rng(1).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(arr).save(str(tmp_path / 'a.png'))
    x, single = to_image_tensor(str(tmp_path / 'a.png'))
    assert single and torch.equal((x[0] * 255).round().byte().permute(1, 2, 0), torch.from_numpy(arr))


# -- 7: configs -----------------------------------------------------------------------------------------------------
def test_misspelt_top_level_cfg_option_is_an_error(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    with pytest.raises(SystemExit) as info:
        train_cli.main([cfg, '--work-dir', str(tmp_path / 'wd'), '--cfg-options', 'train_cfgg.max_iters=1'])
    assert "Did you mean 'train_cfg'?" in str(info.value.code)
    assert not (tmp_path / 'wd' / 'iter_1.pth').exists()


def test_misspelt_nested_kwarg_says_did_you_mean(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'))
    with pytest.raises(SystemExit) as info:
        train_cli.main([cfg, '--work-dir', str(tmp_path / 'wd'), '--cfg-options', 'optim_wrapper.optimizer.lrr=1e-3'])
    assert "unknown argument 'lrr'" in str(info.value.code) and "Did you mean 'lr'?" in str(info.value.code)


# -- 8: .tmp files of killed checkpoint writes --------------------------------------------------------------------------
def test_stale_tmp_files_removed_on_resume(tmp_path):
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=100, ckpt_interval=1)
    wd = tmp_path / 'wd'
    rh.build_runner(cfg, str(wd)).train()
    stale = wd / '.iter_3.pth.k1ll3d.tmp'  # what a SIGKILL inside atomic_write leaves (full size)
    stale.write_bytes((wd / 'iter_2.pth').read_bytes())
    (wd / '.last_checkpoint.x9.tmp').write_text('half')
    rh.build_runner(cfg, str(wd), cfg_options=dict(resume=True, train_cfg=dict(max_iters=4))).train()
    assert not list(wd.glob('.*.tmp'))
    assert sorted(p.name for p in wd.glob('iter_*.pth')) == ['iter_3.pth', 'iter_4.pth']  # max_keep_ckpts=2


# -- LPIPS linear heads are sha256-pinned like the other third-party weights --------------------------------------------
def test_lpips_heads_are_pinned(monkeypatch):
    from transvae.models.pretrained import offline_weights as ow
    heads = ow.load_lpips_heads('alex')
    assert sorted(heads) == [f'lin{k}.model.1.weight' for k in range(5)]
    monkeypatch.setitem(ow.SHA256, ('lpips', 'weights/v0.1/alex.pth'), '0' * 64)
    with pytest.raises(ow.OfflineWeightsError, match='sha256 mismatch'):
        ow.load_lpips_heads('alex')
