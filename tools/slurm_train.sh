#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# Env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""), PYTHON (.venv/bin/python when present,
# else python), PREFLIGHT (1; 0 skips the config / data check of tools/dist_preflight.py).
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=${@:5}
# $PYTHON, else the repository's .venv python when there is one, else python on PATH
if [ -z "${PYTHON}" ] && [ -x "$(dirname $0)/../.venv/bin/python" ]; then PYTHON="$(dirname $0)/../.venv/bin/python"; fi
PYTHON=${PYTHON:-python}
# pre-flight in one process (PREFLIGHT=0 skips it): the config resolves and its data folders exist, else one line
# before any task is queued (tools/dist_preflight.py)
if [ "${PREFLIGHT:-1}" != 0 ]; then
  PYTHONPATH="$(dirname $0)/..":$PYTHONPATH $PYTHON "$(dirname "$0")/dist_preflight.py" train "$CONFIG" --work-dir="$WORK_DIR" "${@:5}" || exit $?
fi

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    $PYTHON -u $(dirname "$0")/train.py ${CONFIG} --work-dir=${WORK_DIR} --launcher="slurm" ${PY_ARGS}
