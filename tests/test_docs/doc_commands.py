"""Extract the command lines of the project's documents and check them statically.

Documents: ``README.md``, ``projects/*/README.md``, ``tools/reproduce/README.md``, ``docs/*.md``. Commands are the
lines of fenced ``bash`` / ``sh`` / ``shell`` / ``console`` blocks (backslash continuations joined, comments
dropped) and the inline code spans that start like a command (an interpreter, ``bash``, or a script path under
``tools/`` / ``scripts/`` / ``projects/``). A command is split into its environment prefix (``VAR=value``,
``nice -n N``, ``timeout N``), its program and its arguments; :func:`check_command` returns what is wrong with it:
a bare ``python`` / ``pytest`` (the documents name the interpreter they need: ``.venv/bin/python``), a script,
config, test or module that does not exist, a shell script that is not executable but is run as one, or an option
the script's ``argparse`` parser does not accept (the parser is captured by running the script with
``parse_args`` intercepted: no work is done). Placeholders (``CONFIG``, ``CKPT``, ``...``, ``[--opt]``) are allowed
where a value goes.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib.util
import os
import os.path as osp
import re
import runpy
import shlex
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import StringIO
from typing import Iterator

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PYTHON = '.venv/bin/python'
SHELL_LANGS = {'bash', 'sh', 'shell', 'console'}
PATH_PREFIXES = ('tools/', 'scripts/', 'projects/', 'configs/', 'tests/', 'docs/', 'transvae/')
#: a word in capitals (CONFIG, CKPT, NUM_GPUS, VAE.pth, ROOT/LABEL) or an ellipsis stands for a value
PLACEHOLDER = re.compile(r'(\.\.\.|…|\b[A-Z][A-Z0-9_]{1,}\b|<[^>]+>|\*)')


#: documents whose inline code spans are not commands of this repository (PAPER.md cites the reference code's files)
INLINE_EXEMPT = {'docs/PAPER.md'}


def documents() -> list[str]:
    """The documents whose commands must run as written (repository-relative paths)."""
    docs = ['README.md', 'tools/reproduce/README.md']
    docs += sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'projects', '*', 'README.md')))
    docs += sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))
    return docs


@dataclasses.dataclass
class Command:
    """One documented command: where it is, its text, and whether it came from a fenced block."""
    doc: str
    line: int
    text: str
    fenced: bool

    def __str__(self) -> str:
        return f'{self.doc}:{self.line}: {self.text}'


def _strip_comment(line: str) -> str:
    """Drop a shell comment (``#`` at the start of a word, outside quotes)."""
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch == '#' and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return ''.join(out).rstrip()


def _looks_like_command(span: str) -> bool:
    words = span.split()
    while words and (re.match(r'^[A-Z_][A-Z0-9_]*=', words[0]) or words[0] == 'nice'):
        words = words[3:] if words[0] == 'nice' and len(words) > 2 and words[1] == '-n' else words[1:]
    first = words[0] if words else ''
    return (first in ('python', 'python3', 'pytest', PYTHON, 'bash')
            or (first.startswith(('tools/', 'scripts/', 'projects/')) and first.endswith(('.py', '.sh'))))


def _inline_commands(doc: str, para: list[tuple[int, str]]) -> list[Command]:
    """Command-like inline code spans of one paragraph (a span may wrap onto the next line)."""
    if doc in INLINE_EXEMPT or not para:
        return []
    text = '\n'.join(line for _, line in para)
    out = []
    for m in re.finditer(r'(?<!`)`([^`]+)`(?!`)', text):
        span = ' '.join(m.group(1).split())
        if span and _looks_like_command(span):
            out.append(Command(doc, para[0][0] + text.count('\n', 0, m.start()), span, False))
    return out


def extract_commands(doc: str) -> list[Command]:
    """The commands of one document (fenced shell blocks, and command-like inline spans of the paragraphs)."""
    with open(osp.join(REPO, doc), encoding='utf-8') as f:
        lines = f.read().splitlines()
    cmds: list[Command] = []
    fence: str | None = None
    lang = ''
    pending, start = '', 0
    para: list[tuple[int, str]] = []
    for no, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped.startswith('```'):
            cmds += _inline_commands(doc, para)
            para = []
            if fence is None:
                fence, lang = '```', stripped[3:].strip().lower()
            else:
                fence = None
            continue
        if fence is None:
            if stripped and not stripped.startswith('|'):
                para.append((no, raw))
            else:  # a blank line or a table row ends the paragraph (a table row is a paragraph of its own)
                cmds += _inline_commands(doc, para)
                para = [(no, raw)] if stripped else []
                if stripped:
                    cmds += _inline_commands(doc, para)
                    para = []
            continue
        if lang not in SHELL_LANGS:
            continue
        text = _strip_comment(raw).strip()
        if lang == 'console' and text.startswith('$ '):
            text = text[2:]
        if not text and not pending:
            continue
        if not pending:
            start = no
        if text.endswith('\\'):
            pending += text[:-1].strip() + ' '
            continue
        full = (pending + text).strip()
        pending = ''
        for part in re.split(r'\s*(?:&&|;)\s*', full):
            if part:
                cmds.append(Command(doc, start, part, True))
    cmds += _inline_commands(doc, para)
    return cmds


def all_commands() -> list[Command]:
    return [c for d in documents() for c in extract_commands(d)]


# ---------------------------------------------------------------------------------------------------------------------
# parsing a command
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Parsed:
    env: dict
    program: str          # '.venv/bin/python', 'bash', a script path, 'python', ...
    module: str | None    # python -m MODULE
    script: str | None    # the script run (python / bash script or an executable path)
    args: list[str]


def split_words(text: str) -> list[str]:
    """shlex words; the optional-argument brackets of a usage line (``[--opt N]``) are dropped."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out = []
    for w in words:
        w = w.strip('[]') if not re.match(r'^\w+=\[', w) else w
        if w and w not in ('|', '\\'):
            out.append(w)
    return out


def parse_command(text: str) -> Parsed:
    words = split_words(text)
    env = {}
    while words:
        if re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', words[0]):
            k, _, v = words.pop(0).partition('=')
            env[k] = v
        elif words[0] == 'nice':
            words = words[3:] if len(words) > 2 and words[1] == '-n' else words[1:]
        elif words[0] == 'timeout':
            words = words[2:]
        else:
            break
    program = words[0] if words else ''
    rest = words[1:]
    module = script = None
    if program in (PYTHON, 'python', 'python3') or program.endswith('/python'):
        while rest and rest[0].startswith('-') and rest[0] != '-m':
            rest = rest[1:]  # interpreter flags (-u, -X ...)
        if rest[:1] == ['-m'] and len(rest) > 1:
            module, rest = rest[1], rest[2:]
        elif rest:
            script, rest = rest[0], rest[1:]
    elif program == 'bash':
        while rest and rest[0].startswith('-'):
            rest = rest[1:]
        if rest:
            script, rest = rest[0], rest[1:]
    elif program.startswith(('tools/', 'scripts/', 'projects/', './')):
        script = program
    return Parsed(env, program, module, script, rest)


def is_placeholder(word: str) -> bool:
    return bool(PLACEHOLDER.search(word))


# ---------------------------------------------------------------------------------------------------------------------
# argparse parsers of the scripts, captured without running them
# ---------------------------------------------------------------------------------------------------------------------
class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__('parser captured')
        self.parser = parser


@contextmanager
def _intercept_parse_args() -> Iterator[None]:
    orig_known = argparse.ArgumentParser.parse_known_args

    def capture(self, args=None, namespace=None):  # noqa: ANN001
        raise _Captured(self)
    argparse.ArgumentParser.parse_known_args = capture  # parse_args calls parse_known_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = orig_known


_PARSERS: dict[str, argparse.ArgumentParser | None] = {}


def script_parser(script: str, args: list[str] = ()) -> argparse.ArgumentParser | None:
    """The ``argparse`` parser of a Python tool (repository-relative path), or ``None`` if it has none.

    The script runs as ``__main__`` with ``args`` as its command line and ``parse_known_args`` intercepted: the
    first parser it parses with is returned before any work is done (a tool whose sub-command is its first argument,
    ``fid_vs_step.py eval``, gives that sub-command's parser).
    """
    sub = args[0] if args and re.fullmatch(r'[a-z_]+', args[0]) else ''
    key = f'{script} {sub}'.strip()
    if key in _PARSERS:
        return _PARSERS[key]
    path = osp.join(REPO, script)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    # only command-line tools, and only those that parse with argparse (themselves, or a thin CLI whose command line
    # is a library module's `main`, e.g. tools/train.py -> transvae.apis.train_cli): a script that ignores its
    # arguments (e.g. tests/test_configs/test_resolved_configs.py, which rewrites the fingerprints) must never run here
    parses = any(w in source for w in ('argparse', 'parse_args', 'study_main')) or bool(
        re.search(r'^from transvae\.apis\.\w+_cli import main$', source, re.M))
    if not re.match(r'^(tools|projects/[^/]+/tools)/', script) or not parses:
        _PARSERS[key] = None
        return None
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [path, *([sub] if sub else [])]
    sys.path.insert(0, osp.dirname(path))
    sys.path.insert(1, REPO)
    parser = None
    try:
        with _intercept_parse_args(), redirect_stdout(StringIO()), redirect_stderr(StringIO()):
            runpy.run_path(path, run_name='__main__')
    except _Captured as c:
        parser = c.parser
    except SystemExit:
        parser = None
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    _PARSERS[key] = parser
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _subparser(parser: argparse.ArgumentParser, args: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """Descend into a sub-command (``fid_vs_step.py eval ...``) named by the first positional argument."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for i, a in enumerate(args):
                if a in action.choices:
                    return _subparser(action.choices[a], args[i + 1:])
    return parser, args


def bad_options(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Options in ``args`` that ``parser`` (or the sub-command it names) does not accept (exact names only)."""
    parser, args = _subparser(parser, args)
    known = _option_strings(parser)
    bad = []
    for a in args:
        if a == '--':
            break  # what follows is handed to another tool
        if a.startswith('--') and len(a) > 2:
            name = a.split('=', 1)[0]
            if name not in known and not is_placeholder(name):
                bad.append(name)
    return bad


# ---------------------------------------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------------------------------------
#: shell scripts whose trailing arguments go to a Python tool: script -> (tool, number of own positional arguments)
FORWARDING_SCRIPTS = {
    'tools/dist_train.sh': ('tools/train.py', 2),
    'tools/dist_test.sh': ('tools/test.py', 3),
}


def _path_words(args: list[str]) -> list[str]:
    """Arguments that name a file of this repository (a config, a script, a test), placeholders excluded."""
    out = []
    for a in args:
        a = a.split('::', 1)[0]
        if '=' in a and not a.startswith(PATH_PREFIXES):
            a = a.split('=', 1)[1].split(':', 1)[0]  # NAME=configs/x.py:CKPT
        if a.startswith(PATH_PREFIXES) and not is_placeholder(a) and '{' not in a:
            out.append(a)
    return out


def check_command(cmd: Command) -> list[str]:
    """What is wrong with one documented command (empty: nothing found)."""
    p = parse_command(cmd.text)
    problems = []
    if p.program in ('python', 'python3', 'pytest'):
        problems.append(f'bare `{p.program}`: write the interpreter the command needs (`{PYTHON}`)')
    if p.module:
        if p.module == 'pytest':
            for a in p.args:
                path = a.split('::', 1)[0]
                if path.startswith('tests') and not osp.exists(osp.join(REPO, path)):
                    problems.append(f'pytest target {path} does not exist')
                elif '::' in a and path.endswith('.py') and osp.isfile(osp.join(REPO, path)):
                    func = a.split('::')[-1].split('[')[0]
                    with open(osp.join(REPO, path), encoding='utf-8') as f:
                        if not re.search(rf'def {re.escape(func)}\b', f.read()):
                            problems.append(f'pytest target {a}: no test {func} in {path}')
        elif importlib.util.find_spec(p.module) is None:
            problems.append(f'module {p.module} not found')
        return problems
    if p.script is None:
        return problems
    script = p.script[2:] if p.script.startswith('./') else p.script
    if is_placeholder(script):
        return problems
    path = osp.join(REPO, script)
    if not osp.isfile(path):
        return problems + [f'{script} does not exist']
    if cmd.fenced and p.program == script and not os.access(path, os.X_OK):
        problems.append(f'{script} is run directly but is not executable (write `bash {script}`)')
    for word in _path_words(p.args):
        if not osp.exists(osp.join(REPO, word)):
            problems.append(f'{word} does not exist')
    if script.endswith('.py'):
        parser = script_parser(script, p.args)
        if parser is not None:
            with open(path, encoding='utf-8') as f:
                source = f.read()  # an option the script takes out of sys.argv itself (`--single-stage`)
            problems += [f'{script} does not accept {o}' for o in bad_options(parser, p.args)
                         if f"'{o}'" not in source and f'"{o}"' not in source]
    elif script in FORWARDING_SCRIPTS:
        tool, nown = FORWARDING_SCRIPTS[script]
        parser = script_parser(tool)
        if parser is not None:
            problems += [f'{script} -> {tool} does not accept {o}' for o in bad_options(parser, p.args[nown:])]
    return problems
