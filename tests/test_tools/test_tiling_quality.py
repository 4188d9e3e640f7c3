"""tools/analysis_tools/tiling_quality.py on one bundled photo with random micro weights (report shape, not quality)."""
import json
import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import tiling_quality as tq  # noqa: E402


def test_tile_edges_and_seam_ratio():
    assert tq.tile_edges(64, 32, 8) == [24, 32, 56]  # tiles [0, 32), [24, 56), [32, 64) (the last one shifted)
    err = torch.ones(16, 16)
    err[:, 7:9] = 3.0  # a seam at column 8
    assert tq.seam_ratio(err, [8], band=1) > 1.5
    assert abs(tq.seam_ratio(torch.ones(16, 16), [8], band=1) - 1.0) < 1e-6


def test_report_on_one_photo(tmp_path):
    out = tmp_path / 'tq.json'
    report = tq.main([osp.join(REPO, 'configs/_base_/models/transvae-micro_f8d16.py'), '--size', '64', '--tiles', '32',
                      '--num-photos', '1', '--out', str(out)])
    (name, entry), = report['photos'].items()
    row = entry['tiled']['32/16']  # the API's default overlap for f8: max(2 f, tile / 4) = 16
    assert row['tile'] == 32 and row['overlap'] == 16
    assert abs(row['psnr_delta_db'] - (row['psnr_tiled'] - entry['psnr_whole'])) < 1e-9
    assert set(report['summary']) == {'32/16'}
    assert json.loads(out.read_text())['photos'][name]['psnr_whole'] == entry['psnr_whole']
    assert (tmp_path / 'tq.md').read_text().startswith('Tiled vs whole reconstruction at 64²')
