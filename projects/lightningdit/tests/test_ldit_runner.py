"""The DiT through the core tools/train.py (2 iterations, checkpoint, exact resume, sample grids) and its generation
FID through the core tools/test.py (class-balanced samples decoded by a frozen VAE, report, grid, 2 gloo ranks; FID
of reference statistics against themselves)."""
from __future__ import annotations

import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_vae_fixtures as tv
from projects.lightningdit.tests.ldit_helpers import write_shards

PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))  # projects/lightningdit
DIT_CONFIG = osp.join(PROJECT, 'configs', 'lightningdit-b2_transvae-l-f8d16_32xb32-200k_in1k.py')
VAE = dict(type='VAE', arch=dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, latent_channels=4,
                                 attn_levels=[], mid_attn=False),
           encoder=dict(type='CNNEncoder'), decoder=dict(type='CNNDecoder'),
           rec_loss=dict(type='ReconstructionNLL', perceptual_cfg=None))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from transvae.registry import MODELS
    tmp = tmp_path_factory.mktemp('ldit')
    lat = str(tmp / 'latents')
    write_shards(lat, sizes=(6, 5), shape=(4, 4, 4))
    vae_cfg = tmp / 'vae.py'
    vae_cfg.write_text(f"default_scope = 'transvae'\nmodel = {VAE!r}\n")
    torch.manual_seed(0)
    vae_ckpt = str(tmp / 'vae.pth')
    torch.save({'state_dict': MODELS.build(VAE).state_dict()}, vae_ckpt)
    cfg = tmp / 'dit.py'
    cfg.write_text(f"""_base_ = [{DIT_CONFIG!r}]
model = dict(latent_size=4, backbone=dict(_delete_=True, type='LightningDiT', arch=None, depth=1, embed_dims=32,
             num_heads=2, patch_size=2, in_channels=4, num_classes=3), sampler=dict(num_steps=2))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={lat!r}, num_classes=3))
optim_wrapper = dict(_delete_=True, type='SafeOptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95)))
train_cfg = dict(max_iters=4)
custom_hooks = [dict(type='TransVAEEMAHook', momentum=0.1, update_buffers=False, priority='ABOVE_NORMAL'),
                dict(type='LatentSampleGridHook', interval=2, num_images=4, nrow=2, num_steps=2,
                     vae_config={str(vae_cfg)!r}, vae_checkpoint={vae_ckpt!r}, latent_dir={lat!r})]
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
test_dataloader = dict(batch_size=3, dataset=dict(num_samples=4, latent_shape=(4, 4, 4), num_classes=3))
test_evaluator = dict(vae_config={str(vae_cfg)!r}, vae_checkpoint={vae_ckpt!r}, latent_dir={lat!r},
                      reference={str(tmp / 'ref.npz')!r}, reference_size=8)
""")
    return dict(tmp=tmp, lat=lat, cfg=str(cfg), vae_cfg=str(vae_cfg), vae_ckpt=vae_ckpt)


def _train(argv):
    from transvae.apis.train_cli import main
    main(argv)


def _test(argv) -> dict:
    from transvae.apis.test_cli import main
    return main(argv)


def _project_tool(name):  # a script of projects/lightningdit/tools, imported as a module from the repository root
    import importlib
    return importlib.import_module(f'projects.lightningdit.tools.{name}')


def _weights(path):
    from transvae.engine.checkpoint_io import load_checkpoint_file
    ckpt = load_checkpoint_file(path)  # weights-only: the runner's checkpoints need no unpickling
    return ckpt['state_dict'], ckpt.get('ema_state_dict')


def test_train_checkpoint_and_exact_resume(setup):
    full, part = str(setup['tmp'] / 'full'), str(setup['tmp'] / 'part')
    _train([setup['cfg'], '--work-dir', full])
    _train([setup['cfg'], '--work-dir', part, '--max-iters', '2'])
    assert osp.isfile(osp.join(part, 'iter_2.pth'))
    _train([setup['cfg'], '--work-dir', part, '--resume'])
    a, ema_a = _weights(osp.join(full, 'iter_4.pth'))
    b, ema_b = _weights(osp.join(part, 'iter_4.pth'))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k in ema_a:
        assert torch.equal(ema_a[k], ema_b[k]), k
    first, _ = _weights(osp.join(full, 'iter_2.pth'))
    assert any(not torch.equal(first[k], a[k]) for k in a)  # it trained
    grids = sorted(os.listdir(osp.join(full, 'vis')))
    assert grids == ['samples_iter_000000.png', 'samples_iter_000002.png', 'samples_iter_000004.png']
    assert Image.open(osp.join(full, 'vis', grids[-1])).size == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)


def test_fid_of_reference_stats_against_themselves_and_low_rank_path():
    from projects.lightningdit.lightningdit.evaluation import fid_against
    from transvae.evaluation.functional.fid import feature_statistics, frechet_distance
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 32)) @ rng.normal(size=(32, 32))
    mu, sigma = feature_statistics(ref)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    assert abs(fid_against(mu, sigma, ref)) < 1e-6  # N > D: the full sqrtm path
    gen = rng.normal(size=(9, 32)) * 2 + 0.5  # N - 1 < D: the exact low-rank path
    mu_g, sigma_g = feature_statistics(gen)
    assert fid_against(mu, sigma, gen) == pytest.approx(frechet_distance(mu_g, sigma_g, mu, sigma), rel=1e-7)
    with pytest.raises(ValueError, match='features'):
        fid_against(mu, sigma, gen[:, :5])


def _dit_checkpoint(setup) -> str:
    """A DiT checkpoint whose samples depend on the weights (the zero initialisation replaced)."""
    from mmengine.config import Config

    from transvae.registry import MODELS
    ckpt = str(setup['tmp'] / 'dit_weights.pth')
    if not osp.isfile(ckpt):
        torch.manual_seed(1)
        dit = MODELS.build(Config.fromfile(setup['cfg']).model)
        for m in dit.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.05)
        torch.save({'state_dict': dit.state_dict()}, ckpt)
    return ckpt


def _reference(setup):
    """A folder of 3 real images (statistics cached) and the same statistics as an ADM-style .npz."""
    from projects.lightningdit.lightningdit.evaluation import reference_statistics
    ref = setup['tmp'] / 'ref'
    if not ref.is_dir():
        ref.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(ref / f'{i}.png')
        mu, sigma, _ = reference_statistics(str(ref), size=8)
        np.savez(setup['tmp'] / 'ref.npz', mu=mu, sigma=sigma)
        np.savez(setup['tmp'] / 'bad.npz', m=mu)
    return ref


def test_reference_statistics_cached_and_self_fid(setup):
    from projects.lightningdit.lightningdit.evaluation import fid_against, folder_features, reference_statistics
    ref = _reference(setup)
    mu, sigma, info = reference_statistics(str(ref), size=8)
    assert info['cached'] and osp.isfile(info['cache'])  # computed once by _reference, then read from the cache
    assert abs(fid_against(mu, sigma, folder_features(str(ref), 8))) < 1e-6  # the same images: FID ~ 0
    os.remove(info['cache'])
    mu2, sigma2, info2 = reference_statistics(str(ref), size=8)
    assert not info2['cached'] and np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    with pytest.raises(KeyError, match='mu'):
        reference_statistics(str(setup['tmp'] / 'bad.npz'))
    with pytest.raises(FileNotFoundError, match='neither'):
        reference_statistics(str(setup['tmp'] / 'missing.npz'))


def test_generation_fid_through_core_test_tool(setup):
    """tools/test.py DIT_CONFIG DIT_CKPT: class-balanced samples (predict step), frozen-VAE decode, FID in the
    registered metric, the GenerationFIDReport layout (Markdown + JSON) and the grid."""
    ref, ckpt = _reference(setup), _dit_checkpoint(setup)
    out = str(setup['tmp'] / 'fid')
    argv = [setup['cfg'], ckpt, '--work-dir', str(setup['tmp'] / 'test_wd')]
    metrics = _test(argv + ['--report', out + '.md', '--out', out + '.json',
                                '--cfg-options', f'test_evaluator.grid_file={out}.png'])
    assert np.isfinite(metrics['fid']) and metrics['fid'] > 0 and metrics['num_samples'] == 4
    saved = json.load(open(out + '.json'))
    (res,) = saved['results'].values()
    assert res == dict(fid=metrics['fid'], num_samples=4) and saved['schema'].endswith('generation_fid/v1')
    assert 'NOT comparable' in saved['warnings'][0]
    assert 'class-balanced over 3 classes (label = i % K)' in saved['protocol']['samples']
    assert 'no CFG' in saved['protocol']['guidance'] and '2 steps' in saved['protocol']['sampler']
    assert saved['vae']['checkpoint'] == setup['vae_ckpt'] and saved['protocol']['reference']['kind'] == 'npz'
    md = open(out + '.md').read()
    assert md.startswith('# Generation FID report') and '| Model | FID ↓ | N | VAE |' in md and '## Protocol' in md
    assert f"{metrics['fid']:.3f}" in md and 'sample grid' in md
    assert Image.open(out + '.png').size == (4 * 8 + 5 * 2, 8 + 2 * 2)  # 4 decoded 8x8 images in a row
    # the same seeded samples whatever the batching (up to float rounding flipping a few uint8 pixels); the folder's
    # statistics equal the .npz made from them
    again = _test(argv + ['--cfg-options', 'test_dataloader.batch_size=4', f'test_evaluator.reference={ref}'])
    assert again['fid'] == pytest.approx(metrics['fid'], rel=2e-3)
    assert again['reference']['kind'] == 'folder'
    with pytest.raises(ValueError, match='latent_shape'):
        _test(argv + ['--cfg-options', 'test_dataloader.dataset.latent_shape=[4,2,2]'])


def test_generation_fid_distributed_gloo_equals_single_process(setup):
    """2 gloo ranks through tools/dist_test.sh: the class-balanced indices split over the ranks give the FID of
    the single-process run; one report, written by rank 0."""
    _reference(setup)
    ckpt = _dit_checkpoint(setup)
    single = _test([setup['cfg'], ckpt, '--work-dir', str(setup['tmp'] / 'single_wd'),
                                        '--cfg-options', 'test_dataloader.dataset.num_samples=5'])
    out = setup['tmp'] / 'dist.json'
    proc = tv.run_checked(['bash', 'tools/dist_test.sh', setup['cfg'], ckpt, '2', '--work-dir',
                           str(setup['tmp'] / 'dist_wd'), '--out', str(out), '--cfg-options',
                           'test_dataloader.dataset.num_samples=5', 'test_dataloader.batch_size=2'],
                          timeout=240, PYTHON=tv.PYTHON, PORT=tv.free_port())
    assert proc.stdout.count('metrics: ') == 1
    (res,) = json.loads(out.read_text())['results'].values()
    assert res['num_samples'] == 5 and res['fid'] == pytest.approx(single['fid'], rel=2e-3)


def test_fid_vs_step_evaluates_checkpoints_through_test_tool(setup):
    """fid_vs_step.py eval runs tools/test.py on each iter_N.pth: the same FID as a direct run; resumable."""
    import shutil
    _reference(setup)
    run = setup['tmp'] / 'run'
    run.mkdir()
    shutil.copy(_dit_checkpoint(setup), run / 'iter_7.pth')
    direct = _test([setup['cfg'], str(run / 'iter_7.pth'), '--work-dir', str(run / 'direct')])
    out = str(setup['tmp'] / 'curve.json')
    argv = ['eval', setup['cfg'], str(run), '--label', 'tiny', '--json', out]
    curve = _project_tool('fid_vs_step').main(argv)
    # another process: float rounding of the thread pool moves the 7th digit at most
    assert curve['points'] == {'7': pytest.approx(direct['fid'], rel=1e-6)} and curve['num_samples'] == 4
    assert osp.isfile(osp.join(setup['tmp'], 'curve_reports', 'iter_7.json'))
    assert osp.isfile(osp.join(setup['tmp'], 'curve_reports', 'iter_7.png'))  # each checkpoint's own grid
    with open(run / 'iter_7.pth', 'wb'):  # an unreadable checkpoint now: a step already in the JSON is skipped
        pass
    assert _project_tool('fid_vs_step').main(argv)['points'] == curve['points']


def test_fid_vs_step_checkpoint_order_and_plot(tmp_path):
    from projects.lightningdit.lightningdit.evaluation.paper_fig6 import FIG6
    tool = _project_tool('fid_vs_step')
    for step in (1000, 200, 30):
        (tmp_path / f'iter_{step}.pth').write_bytes(b'')
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    assert [s for s, _ in tool.checkpoints(str(tmp_path))] == [30, 200, 1000]
    assert [s for s, _ in tool.checkpoints(str(tmp_path), min_step=200)] == [200, 1000]
    run = tmp_path / 'run.json'
    run.write_text(json.dumps(dict(label='ours', num_samples=50, points={'60000': 50.0, '100000': 40.0})))
    png = tool.main(['plot', str(run), '--panel', 'a', '--png', str(tmp_path / 'fig.png')])
    assert Image.open(png).size[0] > 100
    assert FIG6['a'][1]['TransVAE-L-f8d16 (paper)'][4] == (100, 37.43)  # the paper's 100k point (PAPER.md §4.3)
    assert FIG6['a'][1]['FLUX-VAE (paper)'][-1] == (200, 37.45)
    assert len(FIG6['b'][1]['TransVAE-L (paper)']) == 17 and len(FIG6['c'][1]['TransVAE-T (paper)']) == 7
    with pytest.raises(SystemExit):
        tool.main(['draw'])
