"""FID of every saved checkpoint of a DiT run, and the FID-vs-step plot next to the paper's Fig. 6 series.

``python projects/lightningdit/tools/fid_vs_step.py eval CONFIG WORK_DIR --label NAME --json OUT.json
--vae-config C --vae-checkpoint K --latent-dir D --ref REF [eval_fid.py options] [--min-step S] [--max-step S]``
evaluates ``WORK_DIR/iter_*.pth`` in step order (steps already in ``OUT.json`` are skipped, so it resumes) and
rewrites ``OUT.json`` after each checkpoint.

``python projects/lightningdit/tools/fid_vs_step.py plot OUT1.json [OUT2.json ...] --panel a|b|c --png FIG.png``
draws the runs and the paper's panel.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))  # the repository root

from projects.lightningdit.lightningdit.evaluation import fid_tool  # noqa: E402


def checkpoints(work_dir: str, min_step: int = 0, max_step: int | None = None) -> list[tuple[int, str]]:
    """``(step, path)`` of ``iter_N.pth`` in ``work_dir``, ascending."""
    found = [(int(m.group(1)), osp.join(work_dir, f)) for f in os.listdir(work_dir)
             if (m := re.match(r'^iter_(\d+)\.pth$', f))]
    if not found:
        raise FileNotFoundError(f'no iter_N.pth checkpoint in {work_dir}')
    return sorted(p for p in found if p[0] >= min_step and (max_step is None or p[0] <= max_step))


def cmd_eval(argv) -> dict:
    p = argparse.ArgumentParser(description='FID of every checkpoint of a run')
    p.add_argument('config')
    p.add_argument('work_dir')
    p.add_argument('--label', required=True)
    p.add_argument('--json', required=True)
    p.add_argument('--min-step', type=int, default=0)
    p.add_argument('--max-step', type=int)
    fid_tool.add_common_args(p)
    args = p.parse_args(argv)
    fid_tool.init_dist(args.launcher)
    from mmengine.dist import get_rank

    from projects.lightningdit.lightningdit.evaluation import FrozenLatentDecoder
    result = dict(label=args.label, config=args.config, work_dir=args.work_dir, points={})
    if osp.isfile(args.json):
        with open(args.json, encoding='utf-8') as f:
            result = json.load(f)
    decoder = FrozenLatentDecoder.from_config(args.vae_config, args.vae_checkpoint, args.latent_dir,
                                              args.latent_multiplier, args.device, args.vae_preset)
    for step, path in checkpoints(args.work_dir, args.min_step, args.max_step):
        if str(step) in result['points']:
            continue
        model = fid_tool.build_dit(args.config, path, args.preset, args.device, args)
        fid, proto, _ = fid_tool.evaluate(model, decoder, args, progress=False)
        result['points'][str(step)] = fid
        result['protocol'] = proto
        result['num_samples'] = args.num_samples
        if get_rank() == 0:
            print(f'{args.label} step {step}: FID-{args.num_samples} = {fid:.3f}', flush=True)
            os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
            with open(args.json + '.tmp', 'w', encoding='utf-8') as f:
                json.dump(result, f, indent=1)
            os.replace(args.json + '.tmp', args.json)
    return result


def cmd_plot(argv) -> str:
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
    return cmd_eval(argv[1:]) if argv[0] == 'eval' else cmd_plot(argv[1:])


if __name__ == '__main__':
    main()
