"""Reconstruction reports (transvae.evaluation.report) and the multi-model mode of tools/test.py."""
import json

import numpy as np
import pytest
from PIL import Image

import tiny_vae_fixtures as tv

from transvae.apis import test_cli, train_cli
from transvae.evaluation import report as rp

SETTING_KEYS = {'dataset', 'layout', 'data_root', 'resolution', 'num_images', 'num_skipped', 'skipped_files',
                'max_images', 'results'}
METRIC_KEYS = {'psnr', 'ssim', 'lpips', 'rfid'}


def _check_schema(report: dict, labels: list, n_settings: int) -> None:
    assert report['schema'] == rp.SCHEMA
    assert [m['label'] for m in report['models']] == labels
    assert all(set(m) == {'label', 'config', 'checkpoint'} for m in report['models'])
    assert len(report['settings']) == n_settings
    for s in report['settings']:
        assert set(s) == SETTING_KEYS
        assert list(s['results']) == labels
        for m in s['results'].values():
            assert METRIC_KEYS <= set(m)
            assert all(v is None or isinstance(v, float) for v in m.values())
    assert {'crop', 'latent', 'psnr', 'ssim', 'lpips', 'rfid', 'tiling'} <= set(report['protocol'])
    assert isinstance(report['warnings'], list)


def _synthetic(n_images: int) -> dict:
    settings = [
        rp.make_setting('imagenet', r, {
            'TransVAE-T': {'psnr': 28.38, 'ssim': 0.81, 'lpips': 0.091, 'rfid': 0.40},
            'VA-VAE': {'test/psnr': 27.64, 'ssim': 0.78, 'lpips': 0.098, 'rfid': float('nan')},
        }, num_images=n_images, num_skipped=1, skipped_files=['a.jpg'], layout='imagenet', data_root='d/val')
        for r in (256, 512)
    ]
    models = [dict(label='TransVAE-T', config='a.py', checkpoint='a.pth'), dict(label='VA-VAE', config='b.py')]
    return rp.build_report(models, settings, rp.default_protocol('alex', 'none'), command='tools/test.py x')


def test_markdown_tables_protocol_and_warning():
    report = _synthetic(12)
    _check_schema(report, ['TransVAE-T', 'VA-VAE'], 2)
    md = rp.render_markdown(report)
    lines = md.splitlines()
    # one table per setting: header, separator, one row per model, 1 + 4 metric columns
    for title in ('## imagenet @ 256×256', '## imagenet @ 512×512'):
        i = lines.index(title)
        table = [ln for ln in lines[i + 1:i + 8] if ln.startswith('|')]
        assert table[0] == '| Model | PSNR ↑ | SSIM ↑ | LPIPS ↓ | rFID ↓ |'
        assert table[1] == '|---|---|---|---|---|'
        assert table[2].startswith('| TransVAE-T | 28.38 | 0.8100 | 0.0910 | 0.400 |')
        assert table[3] == '| VA-VAE | 27.64 | 0.7800 | 0.0980 | – |'  # prefixed key mapped, NaN shown as –
        assert len(table) == 4
    assert 'N = 12 images evaluated, 1 unreadable skipped' in md
    assert '## Protocol' in md
    for needle in ('centre crop', 'bicubic', 'posterior mean', 'AlexNet', '2015-12-05', '299x299', 'uint8',
                   '11x11 Gaussian', 'imagenet@256: 12 evaluated, 1 skipped'):
        assert needle in md, needle
    from transvae.evaluation.metrics.fid import FIDMetric
    assert FIDMetric.protocol in md
    assert 'WARNING: rFID on fewer than 2048 images' in md
    assert any('N=12' in w and 'NOT' in w for w in report['warnings'])
    json.dumps(report, allow_nan=False)  # NaN became null


def test_no_warning_at_paper_scale():
    report = _synthetic(50000)
    md = rp.render_markdown(report)
    assert 'fewer than 2048' not in md
    assert not any('biased' in w for w in report['warnings'])


def test_cli_arguments():  # the protocol's own parsing: tests/test_evaluation/test_protocol.py
    with pytest.raises(SystemExit):
        test_cli.parse_args(['--tile', 'bad'])
    args = test_cli.parse_args(['--models', 'a.py', '--tile', '64'])
    assert args.multi and args.tile == '64'


def _write_images(folder, n, bad_index=None):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        path = folder / f'img_{i:02d}.png'
        if i == bad_index:
            path.write_bytes(b'not an image')
            continue
        low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(low).resize((48, 40), Image.BILINEAR).save(path)


def _cheap_fid_features(device=None):
    """Stand-in for the Inception network (a 2-image Inception forward costs seconds on a loaded CPU): the
    plumbing (features gathered, Frechet distance computed, value in the report) is what is tested here."""
    import torch
    import torch.nn.functional as F

    def features(imgs):
        x = F.adaptive_avg_pool2d(imgs.float(), (16, 16)).flatten(1)  # (B, 768)
        return torch.cat([x, x, x[:, :512]], dim=1)  # (B, 2048)
    return features


def test_multi_model_cli_two_checkpoints(tmp_path, monkeypatch):
    """2 tiny checkpoints x 1 flat (coco) dataset x 2 resolutions, --max-images 3 with one unreadable file."""
    from transvae.evaluation.metrics import fid as fid_metric
    monkeypatch.setattr(fid_metric, 'get_fid_inception', _cheap_fid_features)
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=2, val_interval=2, ckpt_interval=2)
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'wd')])
    ck2 = str(tmp_path / 'wd' / 'iter_2.pth')
    ck0 = str(tmp_path / 'init.pth')  # a second checkpoint: the untrained weights
    import torch

    from transvae.engine.checkpoint_io import encode_checkpoint
    sd = tv.load_ckpt(ck2)
    torch.manual_seed(1)
    sd['state_dict'] = {k: torch.randn_like(v) * 0.1 for k, v in sd['state_dict'].items()}
    torch.save(encode_checkpoint(sd), ck0)  # saved as the toolkit saves, so it loads with weights_only=True

    data = tmp_path / 'val2017'
    _write_images(data, 5, bad_index=1)  # --max-images 3 takes files 0, 1, 3: one is unreadable
    md, js = tmp_path / 'r' / 'report.md', tmp_path / 'r' / 'report.json'
    report = test_cli.main(['--models', f'{cfg}:{ck2}', f'{cfg}:{ck0}', '--labels', 'trained', 'random',
                        '--datasets', f'coco={data}', '--resolutions', '32', '64', '--max-images', '3',
                        '--batch-size', '2', '--num-workers', '0', '--work-dir', str(tmp_path / 'twd'),
                        '--report', str(md), '--out', str(js), '--show-dir', str(tmp_path / 'show')])
    saved = json.loads(js.read_text())
    _check_schema(saved, ['trained', 'random'], 2)
    assert [s['resolution'] for s in saved['settings']] == [32, 64]
    for s in saved['settings']:
        assert s['dataset'] == 'coco' and s['layout'] == 'coco' and s['max_images'] == 3
        assert s['num_images'] == 2 and s['num_skipped'] == 1
        assert s['skipped_files'][0].endswith('img_01.png')
        for m in s['results'].values():
            assert all(m[k] is not None for k in METRIC_KEYS)
        assert s['results']['trained'] != s['results']['random']
    assert saved['settings'] == report['settings']
    text = md.read_text()
    assert text.count('| Model | PSNR ↑ | SSIM ↑ | LPIPS ↓ | rFID ↓ |') == 2
    assert '## coco @ 32×32' in text and '## coco @ 64×64' in text
    assert 'WARNING: rFID on fewer than 2048 images' in text and '1 unreadable skipped' in text
    assert len(list((tmp_path / 'show' / 'trained' / 'coco_64').glob('*.png'))) == 2


def test_single_model_report(tmp_path):
    """The historical CONFIG CHECKPOINT path also writes the Markdown report (metrics + grid path)."""
    cfg = tv.write_config(str(tmp_path / 'tiny.py'), max_iters=1, val_interval=1, ckpt_interval=1)
    train_cli.main([cfg, '--work-dir', str(tmp_path / 'wd')])
    md, js = tmp_path / 'report.md', tmp_path / 'm.json'
    metrics = test_cli.main([cfg, str(tmp_path / 'wd' / 'iter_1.pth'), '--work-dir', str(tmp_path / 't'),
                         '--report', str(md), '--out', str(js), '--show-dir', str(tmp_path / 'show')])
    saved = json.loads(js.read_text())
    assert saved['metrics'] == metrics and saved['checkpoint'].endswith('iter_1.pth')  # historical keys
    _check_schema(saved, ['tiny'], 1)
    assert saved['settings'][0]['num_images'] == 4 and saved['settings'][0]['resolution'] == 16
    text = md.read_text()
    assert '| tiny | ' in text and str(tmp_path / 'show') in text and 'centre crop 16x16' in text
