#!/usr/bin/env bash
# Mutation testing of the numerical core with mutmut 3 (issue 23): each module is mutated in its own throw-away copy
# of one commit and checked by its OWN tests only, at low priority on one thread; resumable; per-module counts as JSON
# and a Markdown table.
#
# Usage: bash tools/analysis_tools/mutation.sh [--work DIR] [--rev REV] [--recheck] [MODULE ...]
#   MODULE     one of the keys below (layers losses distributions averaged_model functional transforms ldit_transport
#              ldit_models) or its path; default: all, in that order (the most valuable first)
#   --work     work folder (default /tmp/mutation; env MUTATION_WORK): src/ (the commit, from `git archive`), one
#              folder per module (mutmut's mutants/ inside), logs/, results.json, results.md, status.txt
#   --rev      the commit to mutate (default HEAD); a work folder holds one commit: resuming with another is an error
#   --recheck  the "after" pass: copy the module's new *_values.py test files from this working tree into
#              its copy (the sources and the other tests stay the commit's) and re-run every mutant that did not die;
#              the first pass's counts stay in results.json as "before" (mutmut resets a module's verdicts when its
#              test selection changes; the caught ones are carried over, since an added test cannot revive a mutant)
# Needs: the repo's venv (.venv/bin/python, or $PYTHON) with `mutmut==3.8.1`, installed on demand (a tool only, not a
# runtime or CI dependency). Stop it with `kill <pid in status.txt>`; running the same command again resumes: mutmut
# keeps each verdict in <module>/mutants/**/*.meta and only checks the mutants without one.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; fi
PY=${PYTHON:-python3}
WORK=${MUTATION_WORK:-/tmp/mutation}
REV=HEAD
RECHECK=0
MODS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --work) WORK=$2; shift 2 ;;
        --rev) REV=$2; shift 2 ;;
        --recheck) RECHECK=1; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) MODS+=("$1"); shift ;;
    esac
done

# module key -> the path mutated, and the module's own tests (files or pytest node ids; files that do not exist in the
# copy are left out, so the *_values.py files count once they are committed, or with --recheck)
declare -A SRC TESTS
ORDER=(layers losses distributions averaged_model functional transforms ldit_transport ldit_models)
SRC[layers]=transvae/models/layers
TESTS[layers]="tests/test_models/test_layers tests/test_models/test_blocks"
SRC[distributions]=transvae/models/distributions.py
TESTS[distributions]="tests/test_models/test_distributions_reference.py
 tests/test_models/test_losses/test_loss_references.py tests/test_models/test_distributions_mutation_values.py"
SRC[losses]=transvae/models/losses
TESTS[losses]="tests/test_models/test_losses"
SRC[averaged_model]=transvae/models/averaged_model.py
# the EMA's single-process wrapper / sharing tests (not that file's 2-rank training run: minutes)
TESTS[averaged_model]="tests/test_models/test_averaged_model_reference.py
 tests/test_engine/test_ema_separate_ddp.py::test_trainable_ema_shares_frozen_and_discriminator_and_unwraps
 tests/test_engine/test_ema_separate_ddp.py::test_runner_refuses_wrapper_copying_ema
 tests/test_models/test_averaged_model_mutation_values.py"
SRC[transforms]=transvae/datasets/transforms
TESTS[transforms]="tests/test_datasets/test_transforms.py tests/test_datasets/test_transform_references.py
 tests/test_datasets/test_transforms_mutation_values.py tests/test_datasets/test_transforms_loading_values.py"
SRC[functional]=transvae/evaluation/functional
TESTS[functional]="tests/test_evaluation/test_eval_functional.py tests/test_evaluation/test_fid.py
 tests/test_evaluation/test_functional_mutation_values.py"
SRC[ldit_transport]=projects/lightningdit/lightningdit/transport
TESTS[ldit_transport]="projects/lightningdit/tests/test_ldit_transport.py
 projects/lightningdit/tests/test_ldit_mutation_values.py"
SRC[ldit_models]=projects/lightningdit/lightningdit/models
# the converter tests of test_ldit_official.py need no official code (its comparisons skip without
# LIGHTNINGDIT_OFFICIAL_REPO); the flow-model test of test_ldit_transport.py runs LatentFlowModel end to end
TESTS[ldit_models]="projects/lightningdit/tests/test_ldit_model.py projects/lightningdit/tests/test_ldit_official.py
 projects/lightningdit/tests/test_ldit_transport.py::test_flow_model_loss_and_seeded_sampling
 projects/lightningdit/tests/test_ldit_mutation_values.py projects/lightningdit/tests/test_ldit_model_values.py
 projects/lightningdit/tests/test_ldit_converter_values.py"

if [ ${#MODS[@]} -eq 0 ]; then MODS=("${ORDER[@]}"); fi
KEYS=()
for m in "${MODS[@]}"; do
    m=${m%/}
    key=""
    for k in "${ORDER[@]}"; do
        if [ "$m" = "$k" ] || [ "$m" = "${SRC[$k]}" ]; then key=$k; fi
    done
    [ -n "$key" ] || { echo "error: unknown module '$m'; one of: ${ORDER[*]} (or their paths)" >&2; exit 2; }
    KEYS+=("$key")
done

"$PY" -c "import mutmut" 2>/dev/null || "$PY" -m pip install -q "mutmut==3.8.1"
COMMIT=$(git -C "$REPO" rev-parse --verify "$REV^{commit}") || { echo "error: no commit '$REV'" >&2; exit 2; }
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)
if [ -f "$WORK/commit" ] && [ "$(cat "$WORK/commit")" != "$COMMIT" ]; then
    echo "error: $WORK holds commit $(cat "$WORK/commit"), not $COMMIT; use another --work or remove it" >&2; exit 2
fi
if [ ! -f "$WORK/src/.complete" ]; then
    rm -rf "$WORK/src.tmp" && mkdir -p "$WORK/src.tmp"
    git -C "$REPO" archive "$COMMIT" | tar -x -C "$WORK/src.tmp"
    # the pytest plugin that puts every test on one thread (tests/conftest.py asks for 2), only ever in the copy
    printf '%s\n' '"""Mutation runs only: one torch thread per test (the conftest files ask for 2)."""' \
        'import torch' '' '' 'def pytest_runtest_setup(item):' '    torch.set_num_threads(1)' \
        > "$WORK/src.tmp/mutation_one_thread.py"
    touch "$WORK/src.tmp/.complete"
    rm -rf "$WORK/src" && mv "$WORK/src.tmp" "$WORK/src"
    echo "$COMMIT" > "$WORK/commit"
fi
grep -q '^\[tool.mutmut\]' "$REPO/pyproject.toml" || {
    echo "error: $REPO/pyproject.toml has no [tool.mutmut] section" >&2; exit 2; }

status() { echo "$(date -u +%FT%TZ) pid=$$ commit=$COMMIT $*" >> "$WORK/status.txt"; }
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1 TERM=dumb
for key in "${KEYS[@]}"; do
    dir=$WORK/$key
    if [ ! -f "$dir/.complete" ]; then
        rm -rf "$dir" && cp -a "$WORK/src" "$dir.tmp" && mv "$dir.tmp" "$dir"
        tests=()
        for t in ${TESTS[$key]}; do [ -e "$dir/${t%%::*}" ] && tests+=("\"$t\""); done
        # the tool's settings are this tree's [tool.mutmut] section (the code is the commit's): the copy's own section,
        # if any, is replaced by it, with the two per-module keys first
        sel=$(IFS=,; echo "${tests[*]}")
        { awk '/^\[tool\.mutmut\]/{f=1; next} /^\[/{f=0} !f' "$dir/pyproject.toml"
          awk -v src="source_paths = [\"${SRC[$key]}\"]" -v sel="pytest_add_cli_args_test_selection = [$sel]" \
              '/^\[tool\.mutmut\]/{f=1; print; print src; print sel; next} /^\[/{f=0} f' "$REPO/pyproject.toml"
        } > "$dir/pyproject.toml.new"
        mv "$dir/pyproject.toml.new" "$dir/pyproject.toml"
        touch "$dir/.complete"
    fi
    if [ "$RECHECK" = 1 ]; then
        # the working tree's new *_values.py test files of this module, into the copy and mutmut's mutants/
        # (the sources and the module's other tests stay the commit's)
        for t in ${TESTS[$key]}; do
            t=${t%%::*}
            if [ -d "$REPO/$t" ]; then
                files=$(cd "$REPO" && ls "$t"/*_values.py 2>/dev/null || true)
            else
                files=$t
            fi
            for f in $files; do
                if [[ "$f" == *_values.py ]] && [ -e "$REPO/$f" ]; then
                    mkdir -p "$(dirname "$dir/$f")" "$(dirname "$dir/mutants/$f")"
                    cp -a "$REPO/$f" "$(dirname "$dir/$f")/" && cp -a "$REPO/$f" "$(dirname "$dir/mutants/$f")/"
                fi
            done
        done
        # the selection: every listed test that now exists in the copy (a new file joins it)
        sel=""
        for t in ${TESTS[$key]}; do [ -e "$dir/${t%%::*}" ] && sel="$sel${sel:+, }\"$t\""; done
        grep -qxF "pytest_add_cli_args_test_selection = [$sel]" "$dir/pyproject.toml" ||
            sed -i "s|^pytest_add_cli_args_test_selection = .*|pytest_add_cli_args_test_selection = [$sel]|" \
                "$dir/pyproject.toml"
        "$PY" "$REPO/tools/analysis_tools/mutation_report.py" snapshot "$WORK" "$key"
        names=$("$PY" "$REPO/tools/analysis_tools/mutation_report.py" alive "$WORK" "$key")
        status "recheck $key: $(echo "$names" | wc -w) mutants"
        if [ -n "$names" ]; then
            # shellcheck disable=SC2086
            (cd "$dir" && nice -n 19 "$PY" -m mutmut run --max-children 1 $names) >> "$WORK/logs/$key.log" 2>&1 || true
        fi
        "$PY" "$REPO/tools/analysis_tools/mutation_report.py" restore "$WORK" "$key"
    else
        status "start $key (${SRC[$key]})"
        (cd "$dir" && nice -n 19 "$PY" -m mutmut run --max-children 1) >> "$WORK/logs/$key.log" 2>&1 \
            || status "mutmut exited $? on $key (see logs/$key.log)"
    fi
    (cd "$dir" && "$PY" -m mutmut export-cicd-stats) >> "$WORK/logs/$key.log" 2>&1 || true
    "$PY" "$REPO/tools/analysis_tools/mutation_report.py" summarise "$WORK" "$key"
    "$PY" "$REPO/tools/analysis_tools/mutation_report.py" table "$WORK" > /dev/null
    status "done $key"
done
status "finished ${KEYS[*]}"
