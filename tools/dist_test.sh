#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py args...]
# Env: PORT (29500), NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PYTHON (.venv/bin/python when present,
# else python), PREFLIGHT (1; 0 skips the one-process check of the config and its data folders, tools/dist_preflight.py).
set -e
CONFIG=${1:-}
CHECKPOINT=${2:-}
GPUS=${3:-}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
# $PYTHON, else the repository's .venv python when there is one, else python on PATH
if [ -z "${PYTHON}" ] && [ -x "$(dirname $0)/../.venv/bin/python" ]; then PYTHON="$(dirname $0)/../.venv/bin/python"; fi
PYTHON=${PYTHON:-python}
if [ -z "${CONFIG:-}" ] || [ -z "${CHECKPOINT:-}" ] || [ -z "${GPUS:-}" ]; then
  echo "error: usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_GPUS [tools/test.py args ...]" >&2; exit 2
fi
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "error: tools/dist_test.sh: NUM_GPUS must be a positive integer, got '$GPUS'" >&2; exit 2; }
# pre-flight in one process: the config resolves and its data folders exist (else one line, before any rank starts)
if [ "${PREFLIGHT:-1}" != 0 ]; then
  PYTHONPATH="$(dirname $0)/..":$PYTHONPATH $PYTHON "$(dirname "$0")/dist_preflight.py" test "$CONFIG" "$CHECKPOINT" "${@:4}" || exit $?
fi

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
$PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    $(dirname "$0")/test.py \
    $CONFIG \
    $CHECKPOINT \
    --launcher pytorch ${@:4}
