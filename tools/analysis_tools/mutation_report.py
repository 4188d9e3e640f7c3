"""Summarise a mutation run of ``tools/analysis_tools/mutation.sh`` (mutmut 3): per-module counts as JSON and a
Markdown table.

mutmut keeps one verdict per mutant, as an exit code, in ``<module>/mutants/<source>.meta`` (JSON,
``exit_code_by_key``); this reads those files (the same data ``mutmut results`` and ``mutmut export-cicd-stats``
print) and maps the codes with mutmut's own table (``mutmut.stats.status_by_exit_code``).

Usage (the shell script calls these):
    python tools/analysis_tools/mutation_report.py summarise WORK MODULE   # WORK/results.json (atomic), one module
    python tools/analysis_tools/mutation_report.py table WORK              # WORK/results.md from results.json
    python tools/analysis_tools/mutation_report.py snapshot WORK MODULE    # keep the current counts as "before"
    python tools/analysis_tools/mutation_report.py alive WORK MODULE       # names of the mutants that did not die
    python tools/analysis_tools/mutation_report.py restore WORK MODULE     # after a recheck: the caught verdicts back
"""
import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

#: the statuses a table column shows; "no tests" = no test of the module calls the mutated function
COLUMNS = ('killed', 'survived', 'timeout', 'suspicious', 'no tests', 'segfault', 'not checked')
#: a mutant counts as caught when its tests fail, time out (an endless loop is caught) or crash
CAUGHT = ('killed', 'timeout', 'segfault')


def read_verdicts(module_dir: Path) -> dict[str, str]:
    """``{mutant name: status}`` from every ``*.meta`` file under ``module_dir/mutants``."""
    verdicts = {}
    for meta in sorted((module_dir / 'mutants').rglob('*.py.meta')):
        data = json.loads(meta.read_text())
        for name, code in data['exit_code_by_key'].items():
            verdicts[name] = status_by_exit_code[code]
    return verdicts


def counts(verdicts: dict[str, str]) -> dict:
    """Per-status counts, the total and the score: caught / (total - not checked), in percent."""
    c = Counter(verdicts.values())
    row = {k: c.get(k, 0) for k in COLUMNS}
    row['other'] = sum(v for k, v in c.items() if k not in COLUMNS)
    row['mutants'] = len(verdicts)
    checked = row['mutants'] - row['not checked']
    row['score'] = round(100.0 * sum(row[k] for k in CAUGHT) / checked, 1) if checked else None
    return row


def write_json_atomic(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def load_results(work: Path) -> dict:
    path = work / 'results.json'
    return json.loads(path.read_text()) if path.exists() else {}


def module_source(module_dir: Path) -> str:
    import tomllib
    return tomllib.loads((module_dir / 'pyproject.toml').read_text())['tool']['mutmut']['source_paths'][0]


def summarise(work: Path, module: str) -> None:
    results = load_results(work)
    verdicts = read_verdicts(work / module)
    entry = results.get(module, {})
    entry.update(source=module_source(work / module), commit=(work / 'commit').read_text().strip(),
                 counts=counts(verdicts),
                 alive=sorted(n for n, s in verdicts.items() if s not in CAUGHT and s != 'not checked'))
    results[module] = entry
    write_json_atomic(work / 'results.json', results)
    c = entry['counts']
    print(f'{module}: {c["mutants"]} mutants, {c["killed"]} killed, {c["survived"]} survived, '
          f'{c["timeout"]} timeout, {c["no tests"]} no tests, score {c["score"]}%')


def before_path(work: Path, module: str) -> Path:
    return work / f'{module}.verdicts_before.json'


def snapshot(work: Path, module: str) -> None:
    """Keep the first pass's counts as ``before`` and its verdicts in ``WORK/MODULE.verdicts_before.json`` (once: a
    second recheck does not overwrite them)."""
    results = load_results(work)
    if module not in results:
        summarise(work, module)
        results = load_results(work)
    results[module].setdefault('before', results[module]['counts'])
    write_json_atomic(work / 'results.json', results)
    if not before_path(work, module).exists():
        write_json_atomic(before_path(work, module), read_verdicts(work / module))


def restore(work: Path, module: str) -> None:
    """Give back the first pass's caught verdicts that mutmut reset.

    A new test file changes the test selection, and mutmut then resets every verdict of the module; only the mutants
    that were alive are re-run. A caught mutant stays caught when tests are added (its failing test is still
    selected, unchanged), so its first-pass verdict is carried over.
    """
    before = json.loads(before_path(work, module).read_text())
    last = work / f'{module}.verdicts_last.json'  # the verdicts just before this recheck (see alive)
    if last.exists():
        before = {**before, **{n: s for n, s in json.loads(last.read_text()).items() if s in CAUGHT}}
    code = {'killed': 1, 'timeout': 36, 'segfault': -11}
    for meta in sorted((work / module / 'mutants').rglob('*.py.meta')):
        data = json.loads(meta.read_text())
        changed = False
        for name, exit_code in data['exit_code_by_key'].items():
            if exit_code is None and before.get(name) in CAUGHT:
                data['exit_code_by_key'][name] = code[before[name]]
                changed = True
        if changed:
            write_json_atomic(meta, data)


def alive(work: Path, module: str) -> None:
    """The mutants to re-run: checked and not caught now, and not caught in the first pass either (a mutant the
    first pass has not reached yet is left to it)."""
    before = json.loads(before_path(work, module).read_text()) if before_path(work, module).exists() else {}
    verdicts = read_verdicts(work / module)
    write_json_atomic(work / f'{module}.verdicts_last.json', verdicts)  # for restore, after mutmut's reset
    print(' '.join(sorted(n for n, s in verdicts.items()
                          if s not in CAUGHT and before.get(n) not in CAUGHT
                          and (s != 'not checked' or before.get(n, 'not checked') != 'not checked'))))


def table(work: Path) -> None:
    results = load_results(work)
    head = ('| module | mutants | killed | survived | timeout | suspicious | no tests | not checked | score '
            '| score before new tests |\n|' + ' --- |' * 10 + '\n')
    lines = []
    for module, e in results.items():
        c = e['counts']
        before = e.get('before', {}).get('score')
        lines.append(f'| `{e["source"]}` | {c["mutants"]} | {c["killed"]} | {c["survived"]} | {c["timeout"]} '
                     f'| {c["suspicious"]} | {c["no tests"]} | {c["not checked"]} | {c["score"]}% '
                     f'| {"" if before is None else str(before) + "%"} |')
    commit = next(iter(results.values()))['commit'] if results else '?'
    text = (f'Mutation run of commit {commit} (mutmut 3, tools/analysis_tools/mutation.sh). Score = (killed + '
            f'timeout + segfault) / checked mutants.\n\n' + head + '\n'.join(lines) + '\n')
    fd, tmp = tempfile.mkstemp(dir=work, prefix='results.md', suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, work / 'results.md')
    print(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=('summarise', 'table', 'snapshot', 'alive', 'restore'))
    parser.add_argument('work', type=Path)
    parser.add_argument('module', nargs='?')
    args = parser.parse_args(argv)
    if args.command != 'table' and not args.module:
        parser.error(f'{args.command} needs a MODULE')
    if args.command != 'table' and not (args.work / args.module / 'pyproject.toml').is_file():
        sys.exit(f'error: no mutation copy of {args.module!r} in {args.work}')
    if args.command == 'table':
        table(args.work)
    else:
        commands = {'summarise': summarise, 'snapshot': snapshot, 'alive': alive, 'restore': restore}
        commands[args.command](args.work, args.module)


if __name__ == '__main__':
    main()
