"""Table 2 (VF loss) configs: each pair differs only in the VF loss; the CPU pair's target is a labelled proxy; the
analysis tool (``tools/reproduce/analyze_vf_loss.py``) runs end to end on a 2-iteration CPU pair."""
from __future__ import annotations

import importlib.util
import json
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from transvae.engine.config_surgery import apply_preset
from transvae.engine.resume_checks import config_leaf_diff

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PAPER_VF = 'configs/transvae/transvae-t_f16d32_8xb32-100e_in1k.py'
PAPER_WO = 'configs/transvae/transvae-t_f16d32_wo-vf_8xb32-100e_in1k.py'
CPU_VF = 'configs/experiments/table2_cpu/transvae_micro_vf.py'
CPU_WO = 'configs/experiments/table2_cpu/transvae_micro_wo_vf.py'
MAIN_JOB = 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py'
pytestmark = pytest.mark.usefixtures('one_thread')  # tiny ops: one thread is much faster on the shared CPU


def resolved(rel: str, preset: str | None = None) -> dict:
    cfg = Config.fromfile(osp.join(REPO, rel))
    return (apply_preset(cfg, preset) if preset else cfg).to_dict()


def differing(a: dict, b: dict) -> set[str]:
    return set(config_leaf_diff(a, b))


def outside(keys: set[str], *prefixes: str) -> set[str]:
    return {k for k in keys if not any(k == p or k.startswith((p + '.', p + '[')) for p in prefixes)}


@pytest.mark.parametrize('preset', [None, 'cpu'])
def test_paper_pair_differs_only_in_vf(preset):
    vf, wo = resolved(PAPER_VF, preset), resolved(PAPER_WO, preset)
    diff = differing(vf, wo)
    # `recipe_model` is the recipe's holder of `model` (the leaf sets `model = _base_.recipe_model`)
    assert not outside(diff, 'model.vf_loss', 'recipe_model.vf_loss', 'presets.cpu.model.vf_loss'), diff
    assert 'model.vf_loss.loss_weight' in diff and wo['model']['vf_loss'] is None
    assert vf['model']['vf_loss']['foundation_cfg']['type'] == ('VGG16Proxy' if preset else 'DINOv2')
    assert wo['model']['type'] == vf['model']['type'] == 'VAEGAN'


def test_cpu_pair_differs_only_in_vf_and_wo_is_the_main_job():
    vf, wo = resolved(CPU_VF), resolved(CPU_WO)
    assert outside(differing(vf, wo), 'model.vf_loss') == set()
    assert vf['model']['vf_loss'] == dict(type='VFLoss', loss_weight=0.1, cos_margin=0.5, distmat_margin=0.25,
                                          foundation_cfg=dict(type='VGG16Proxy', resize=None))
    # same model, recipe and number of images as the main job; only the class that adds the VF loss differs
    assert differing(wo, resolved(MAIN_JOB)) == {'model.type'}
    assert wo['train_cfg']['max_iters'] == 1250 and wo['train_dataloader']['batch_size'] == 16


def test_cpu_vf_target_is_a_labelled_proxy():
    from transvae.apis import register_all_modules
    from transvae.registry import MODELS
    register_all_modules()
    target = MODELS.get(resolved(CPU_VF)['model']['vf_loss']['foundation_cfg']['type'])
    assert target.is_proxy and 'proxy' in target.name
    comment = open(osp.join(REPO, CPU_VF)).read()
    assert 'PROXY' in comment and 'NOT the paper' in comment


def _tool():
    spec = importlib.util.spec_from_file_location('analyze_vf_loss', osp.join(REPO, 'tools/reproduce/analyze_vf_loss.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_holdout_indices():
    tool = _tool()
    y = torch.tensor([0, 1, 1, 1, 1, 2, 2, 3, -1])
    tr, ho = tool.holdout_indices(y, 4)
    assert ho.tolist() == [4, 6]  # class 1: last of 4; class 2: last of 2; classes 0 / 3: one item, train only
    assert tr.tolist() == [0, 1, 2, 3, 5, 7]
    with pytest.raises(ValueError, match='no class has two items'):
        tool.holdout_indices(torch.tensor([0, 1, 2]), 4)


def _two_iteration_checkpoint(rel: str, path: str) -> None:
    """Build ``rel``'s model, take 2 training steps on random 32² batches, save an mmengine-style checkpoint."""
    from transvae.apis import register_all_modules
    from transvae.registry import MODELS
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(osp.join(REPO, rel)).model)
    model.train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        model.train_step(dict(inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
                                      for _ in range(2)]), optim)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=2)), path)


def test_analysis_runs_end_to_end_on_a_two_iteration_pair(tmp_path, monkeypatch, capsys):
    """Both models extract, get latent statistics and a within-split probe on the bundled photos' sources."""
    tool = _tool()
    ckpts = {}
    for name, rel in (('vf', CPU_VF), ('wo', CPU_WO)):
        ckpts[name] = str(tmp_path / f'{name}.pth')
        _two_iteration_checkpoint(rel, ckpts[name])

    def run_in_process(script: str, *argv: str) -> None:  # the tools' own command lines, without interpreter starts
        monkeypatch.setattr(sys, 'argv', [script, *argv])
        runpy.run_path(osp.join(tool.TOOLS, script), run_name='__main__')

    monkeypatch.setattr(tool, 'run_tool', run_in_process)
    work = tmp_path / 'analysis'
    results = tool.main(['--with', osp.join(REPO, CPU_VF), ckpts['vf'], '--without', osp.join(REPO, CPU_WO),
                         ckpts['wo'], '--work-dir', str(work), '--data-root', osp.join(REPO, 'data/sample_photos'),
                         '--resolution', '32', '--max-items', '4', '--num-workers', '0', '--batch-size', '4',
                         '--num-samples', '16', '--runs', '1', '--probe-holdout', '4', '--probe-epochs', '2',
                         '--probe-batch-size', '8', '--device', 'cpu'])
    stored = json.loads((work / 'vf_analysis.json').read_text())
    assert stored.keys() == results.keys() == {'with VF', 'without VF'}
    assert stored['with VF']['vf_target']['is_proxy'] and stored['without VF']['vf_target'] is None
    for r in stored.values():
        probe = r['linear_probe']
        assert probe['num_train'] + probe['num_heldout'] == 4 and probe['num_heldout'] >= 1
        assert 0.0 <= probe['top1'] <= 100.0 and 0.0 < probe['majority_top1'] <= 100.0
        assert set(r['latent_stats']['mean']) >= {'density_cv', 'normalized_entropy', 'gini'}
    table = capsys.readouterr().out
    assert 'VF loss target (PROXY)' in table and "PROXY, not the paper's DINOv2" in table
    # the VF loss changed the encoder in 2 steps: the two models' latent statistics differ
    assert stored['with VF']['latent_stats']['mean'] != stored['without VF']['latent_stats']['mean']
