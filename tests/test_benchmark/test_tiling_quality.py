"""transvae.benchmark.tiling_quality (behind tools/analysis_tools/tiling_quality.py): worker protocol, exact vs blend
rows, the attention stub and SD-VAE tiles."""
import json
import os.path as osp
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from transvae.benchmark import tiling_quality as tq

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_attention_stub_records_and_extrapolates(monkeypatch):
    q = torch.randn(1, 2, 64, 16)
    with tq.AttentionStub() as stub:
        out = F.scaled_dot_product_attention(q, q, q)
    assert out.shape == q.shape and stub.calls == [[1, 2, 64, 16]]
    torch.testing.assert_close(out, q.mean(dim=-2, keepdim=True).expand_as(q))  # global: every token sees all
    assert F.scaled_dot_product_attention(q, q, q).abs().sum() > 0  # restored
    assert tq.attention_seconds([[1, 2, 256, 16]], probe_tokens=256) > 0  # a real timed call
    # the extrapolation, on a clock that ticks 1 s per reading (a timed call takes 1 s): one probe per (B, heads, d),
    # each call's time x (N / probe_tokens)²; not wall-clock ratios, which a loaded machine makes flaky
    ticks = iter(range(100))
    monkeypatch.setattr(tq, 'time', SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    assert tq.attention_seconds([[1, 2, 2560, 16], [1, 2, 256, 16], [1, 4, 512, 16]], probe_tokens=256) == 100 + 1 + 4


def test_sdvae_tile_count_matches_diffusers_loop():
    assert [tq.sdvae_tiles(s) for s in (512, 1024, 2048, 4096)] == [4, 9, 36, 121]


def test_report_exact_equals_whole_blend_does_not(tmp_path):
    out = tmp_path / 'tq.json'
    opts = tq.TilingQualityOptions(osp.join(REPO, 'configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py'),
                                   photos=str(tmp_path / 'none'), quality_sizes=[64], perf_sizes=[], tiles=[32],
                                   sdvae_sizes=[])
    report = tq.run_tiling_quality(opts)
    tq.save_report(report, str(out))
    rows = {r['mode']: r for r in report['rows']}
    assert set(rows) == {'whole', 'exact', 'blend'} and not any('error' in r for r in rows.values())
    assert rows['exact']['psnr_vs_whole'] > 80 and rows['exact']['max_abs_diff'] < 1e-5  # random weights
    assert rows['blend']['psnr_vs_whole'] < 60
    assert all(r['peak_mb'] >= 0 and r['decode_s'] > 0 for r in rows.values())
    assert json.loads(out.read_text())['rows'][0]['mode'] == 'whole'
    assert (tmp_path / 'tq.md').read_text().startswith('| size | mode |')
