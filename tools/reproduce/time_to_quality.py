"""Time to quality: held-out PSNR / LPIPS against training time, micro TransVAE vs a CNN-VAE of its size.

Both on the main job's recipe (configs/transvae/transvae-micro_f8d16_1xb16-10min_photos.py, its 1250 iterations,
held-out photos at 256²), validated every ``--val-interval`` iterations. Quality after k iterations does not depend
on the machine's load, the logged wall-clock does: the figure puts quality(k) at k × s/it, with the seconds per
training iteration of both models measured in one process, interleaved (paper_studies/speed.py). Measure on a quiet
machine (pause other jobs); the logged wall-clock curves are kept in the bottom row, labelled with their load.

    export PYTHONPATH=.  # from the repository root: the studies are imported as projects.paper_studies
    .venv/bin/python tools/reproduce/time_to_quality.py --seeds 0 1 --threads 1  # train, measure s/it (once), plot
    .venv/bin/python tools/reproduce/time_to_quality.py --speed-only --threads 1  # only measure s/it -> step_times.json
    .venv/bin/python tools/reproduce/time_to_quality.py --no-train  # plot what the work dirs hold
    .venv/bin/python tools/reproduce/time_to_quality.py --study fig1 --root work_dirs/reproduce/fig1 --no-train \
        --only transvae cnn_vae --threads 1 --out work_dirs/reproduce/time_to_quality/fig1_pair   # finished runs

The step timed is the one each variant's seed-0 run recorded (done.json / driver.log), else the one the driver
would run with these options.

Writes ``step_times.json``, ``time_to_quality.png`` and ``time_to_quality.md`` under ``--out`` (default ``--root``,
beside the study's curves.png / results.md).
"""
from projects.paper_studies.paper_studies.cli import time_to_quality_main, time_to_quality_parser

if __name__ == '__main__':
    parser = time_to_quality_parser(__doc__.splitlines()[0])
    time_to_quality_main(parser.parse_args(), parser)
