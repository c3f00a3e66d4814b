#!/usr/bin/env bash
# Data-parallel training.
#   bash scripts/run_distribute_train.sh DEVICE_NUM DISTRIBUTE RANK_TABLE_FILE DATA_DIR [train.py options]
# Ascend: RANK_TABLE_FILE is the rank table (hccl json); one process per device, logs in
#   train_parallel/rank_N.log.
# GPU and CPU: pass "none" as RANK_TABLE_FILE; MindSpore's msrun starts DEVICE_NUM processes on this
#   machine (logs in train_parallel/worker_N.log). Add --device_target GPU or CPU as needed.
# DISTRIBUTE false trains one process, as run_standalone_train.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
    echo "usage: bash $0 DEVICE_NUM DISTRIBUTE(true|false) RANK_TABLE_FILE|none DATA_DIR [train.py options]" >&2
    exit 2
fi
DEVICE_NUM=$1 DISTRIBUTE=$2 RANK_TABLE=$3 DATA_DIR=$4
shift 4
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
LOG_DIR=${LOG_DIR:-train_parallel}

if [ "$DISTRIBUTE" != "true" ]; then
    exec "$PYTHON" train.py --data_dir "$DATA_DIR" "$@"
fi
mkdir -p "$LOG_DIR"
if [ "$RANK_TABLE" != "none" ]; then
    [ -f "$RANK_TABLE" ] || { echo "error: rank table $RANK_TABLE not found" >&2; exit 1; }
    export RANK_TABLE_FILE=$(realpath "$RANK_TABLE") RANK_SIZE=$DEVICE_NUM
    pids=()
    for ((i = 0; i < DEVICE_NUM; i++)); do
        DEVICE_ID=$i RANK_ID=$i "$PYTHON" train.py --data_dir "$DATA_DIR" --distribute true \
            --device_target Ascend "$@" > "$LOG_DIR/rank_$i.log" 2>&1 &
        pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    exit $status
fi
# msrun starts plain `python`: run it from the environment's bin so that python is ours
BIN=$(cd "$(dirname "$(command -v "$PYTHON")")" && pwd)
MSRUN=$BIN/msrun
[ -x "$MSRUN" ] || MSRUN=msrun
PATH=$BIN:$PATH "$MSRUN" --worker_num="$DEVICE_NUM" \
    --local_worker_num="$DEVICE_NUM" --master_port="${MASTER_PORT:-8118}" --log_dir="$LOG_DIR" \
    --join=True train.py --data_dir "$DATA_DIR" --distribute true "$@"
