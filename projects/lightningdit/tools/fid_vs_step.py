"""FID of every saved checkpoint of a DiT run, and the FID-vs-step plot next to the paper's Fig. 6 series.

``python -m projects.lightningdit.tools.fid_vs_step eval CONFIG WORK_DIR --label NAME --json OUT.json
[--gpus G] [--min-step S] [--max-step S] [-- tools/test.py options, e.g. --preset cpu --cfg-options ...]``
evaluates ``WORK_DIR/iter_*.pth`` in step order with the core ``tools/test.py CONFIG CKPT`` (the config's
generation-FID test set, metric and report; ``tools/dist_test.sh`` with ``--gpus G > 1``), keeps each checkpoint's
JSON report and sample grid in ``OUT_reports/iter_N.{json,png}``, and rewrites ``OUT.json`` after each checkpoint;
steps already in ``OUT.json`` are skipped, so it resumes.

``python -m projects.lightningdit.tools.fid_vs_step plot OUT1.json [OUT2.json ...] --panel a|b|c --png FIG.png``
draws the runs and the paper's panel.

Run from the repository root (as a module, or with ``PYTHONPATH=.`` as the project's scripts do): the project
imports as ``projects.lightningdit``.
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))  # the repository root (tools/test.py)


def checkpoints(work_dir: str, min_step: int = 0, max_step: int | None = None) -> list[tuple[int, str]]:
    """``(step, path)`` of ``iter_N.pth`` in ``work_dir``, ascending."""
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'work dir {work_dir} not found (the DiT run whose iter_N.pth to evaluate)')
    found = [(int(m.group(1)), osp.join(work_dir, f)) for f in os.listdir(work_dir)
             if (m := re.match(r'^iter_(\d+)\.pth$', f))]
    if not found:
        raise FileNotFoundError(f'no iter_N.pth checkpoint in {work_dir}')
    return sorted(p for p in found if p[0] >= min_step and (max_step is None or p[0] <= max_step))


def test_command(config: str, ckpt: str, out_json: str, work_dir: str, gpus: int, extra: list[str]) -> list[str]:
    """The core evaluation of one checkpoint (``tools/test.py``, or ``tools/dist_test.sh`` for ``gpus > 1``)."""
    args = [config, ckpt, '--work-dir', work_dir, '--out', out_json] + extra
    if gpus > 1:
        return ['bash', osp.join(ROOT, 'tools', 'dist_test.sh'), config, ckpt, str(gpus)] + args[2:]
    return [sys.executable, osp.join(ROOT, 'tools', 'test.py')] + args


def cmd_eval(argv: list[str]) -> dict:
    extra: list[str] = []
    if '--' in argv:
        i = argv.index('--')
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description='FID of every checkpoint of a run (through tools/test.py)')
    p.add_argument('config')
    p.add_argument('work_dir')
    p.add_argument('--label', required=True)
    p.add_argument('--json', required=True)
    p.add_argument('--gpus', type=int, default=1, help='processes per evaluation (tools/dist_test.sh when > 1)')
    p.add_argument('--min-step', type=int, default=0)
    p.add_argument('--max-step', type=int)
    args = p.parse_args(argv)
    if args.gpus < 1:
        raise ValueError(f'--gpus must be >= 1, got {args.gpus}')
    # every input and output is checked before the first checkpoint is sampled (tools/test.py then checks the
    # reference statistics, the VAE and the latent statistics when it builds the metric, before sampling)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config {args.config} not found')
    todo = checkpoints(args.work_dir, args.min_step, args.max_step)
    if not todo:
        raise FileNotFoundError(f'no iter_N.pth in {args.work_dir} between --min-step {args.min_step} and --max-step '
                                f'{args.max_step}')
    reports = osp.splitext(args.json)[0] + '_reports'
    from transvae.utils.output_paths import check_outputs
    check_outputs({'--json': args.json, '--json reports folder': reports},
                  dict({'config': args.config}, **{f'checkpoint {osp.basename(c)}': c for _, c in todo}),
                  dirs=['--json reports folder'])
    result = dict(label=args.label, config=args.config, work_dir=args.work_dir, points={})
    if osp.isfile(args.json):
        try:
            with open(args.json, encoding='utf-8') as f:
                result = json.load(f)
            if not isinstance(result.get('points'), dict):
                raise ValueError('no "points" object')
        except (ValueError, AttributeError) as e:
            raise ValueError(f'--json {args.json} exists but is not a curve written by this tool ({e}); give another '
                             'path or remove it') from None
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    for step, path in todo:
        if str(step) in result['points']:
            continue
        out = osp.join(reports, f'iter_{step}.json')
        grid = ['--cfg-options', f"test_evaluator.grid_file={osp.join(reports, f'iter_{step}.png')}"]
        cmd = test_command(args.config, path, out, osp.join(reports, 'work_dir'), args.gpus, extra + grid)
        rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode  # its error line goes to stderr
        if rc != 0:
            raise RuntimeError(f'tools/test.py failed on {path} (exit {rc}, its message above); the points so far are '
                               f'in {args.json}')
        with open(out, encoding='utf-8') as f:
            report = json.load(f)
        (r,) = report['results'].values()
        result['points'][str(step)] = r['fid']
        result['num_samples'] = r['num_samples']
        result['protocol'] = report['protocol']
        print(f"{args.label} step {step}: FID-{r['num_samples']} = {r['fid']:.3f}", flush=True)
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json + '.tmp', 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=1)
        os.replace(args.json + '.tmp', args.json)
    return result


def cmd_plot(argv: list[str]) -> str:
    from projects.lightningdit.lightningdit.evaluation.paper_fig6 import plot_fid_vs_step
    p = argparse.ArgumentParser(description='plot FID vs step next to the paper')
    p.add_argument('json', nargs='+')
    p.add_argument('--panel', choices=['a', 'b', 'c'])
    p.add_argument('--png', required=True)
    p.add_argument('--title')
    args = p.parse_args(argv)
    runs = {}
    for path in args.json:
        with open(path, encoding='utf-8') as f:
            r = json.load(f)
        runs[f"{r['label']} (N={r.get('num_samples', '?')})"] = [(int(s), v) for s, v in r['points'].items()]
    return plot_fid_vs_step(runs, args.png, args.panel, args.title)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ('eval', 'plot'):
        raise SystemExit('usage: fid_vs_step.py {eval,plot} ... (see the module docstring)')
    try:
        return cmd_eval(argv[1:]) if argv[0] == 'eval' else cmd_plot(argv[1:])
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # bad input: one line, no traceback
        raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
    main()
