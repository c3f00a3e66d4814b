#!/usr/bin/env bash
# Data-parallel training. Two forms:
#   bash scripts/run_distribute_train.sh DEVICE_NUM DISTRIBUTE RANK_TABLE_FILE DATA_DIR [train.py options]
#     (the model zoo's) Ascend: RANK_TABLE_FILE is the rank table (hccl json); one process per
#     device, logs in LOG_DIR/rank_N.log. GPU and CPU: pass "none" as RANK_TABLE_FILE and MindSpore's
#     msrun starts DEVICE_NUM processes on this machine (logs in LOG_DIR/worker_N.log); add
#     --device_target GPU or CPU as needed. DISTRIBUTE false trains one process, as
#     run_standalone_train.sh does.
#   bash scripts/run_distribute_train.sh WORKER_NUM LOCAL_WORKER_NUM MASTER_ADDR MASTER_PORT NODE_RANK DATA_DIR [train.py options]
#     msrun across machines: run it on every node with the same WORKER_NUM (all processes),
#     MASTER_ADDR and MASTER_PORT (node 0's address and a free port), LOCAL_WORKER_NUM processes on
#     this node and NODE_RANK 0, 1, ... (node 0 hosts the scheduler); logs in LOG_DIR/worker_N.log.
# LOG_DIR defaults to OUTPUT_DIR/train_parallel; this launcher's own output goes to OUTPUT_DIR/train.log.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

usage() {
    echo "error: expected DEVICE_NUM DISTRIBUTE(true|false) RANK_TABLE_FILE|none DATA_DIR, or WORKER_NUM" \
        "LOCAL_WORKER_NUM MASTER_ADDR MASTER_PORT NODE_RANK DATA_DIR, then train.py options (see the top of $0)" >&2
    exit 2
}
number() { [[ $2 =~ ^[0-9]+$ ]] || { echo "error: $1 must be a whole number, got '$2'" >&2; exit 2; }; }

if [ $# -ge 4 ] && [[ $2 == true || $2 == false ]]; then
    FORM=rank_table DEVICE_NUM=$1 DISTRIBUTE=$2 RANK_TABLE=$3 DATA_DIR=$4
    shift 4
    number DEVICE_NUM "$DEVICE_NUM"
elif [ $# -ge 6 ] && [[ $2 =~ ^[0-9]+$ ]]; then
    FORM=multi_node WORKER_NUM=$1 LOCAL_WORKER_NUM=$2 MASTER_ADDR=$3 MASTER_PORT=$4 NODE_RANK=$5 DATA_DIR=$6
    shift 6
    for name in WORKER_NUM MASTER_PORT NODE_RANK; do number "$name" "${!name}"; done
else
    usage
fi
OUT=$(config_value output_dir --data_dir "$DATA_DIR" "$@")
LOG_DIR=${LOG_DIR:-${OUT:-.}/train_parallel}

if [ "$FORM" = rank_table ] && [ "$DISTRIBUTE" != "true" ]; then
    run_logged "$OUT" train.log --output_dir "$PYTHON" train.py --data_dir "$DATA_DIR" "$@"
    exit
fi
mkdir -p "$LOG_DIR"
if [ "$FORM" = rank_table ] && [ "$RANK_TABLE" != "none" ]; then
    [ -f "$RANK_TABLE" ] || { echo "error: rank table $RANK_TABLE not found" >&2; exit 1; }
    export RANK_TABLE_FILE=$(realpath "$RANK_TABLE") RANK_SIZE=$DEVICE_NUM
    launch_ranks() {
        local pids=() status=0
        for ((i = 0; i < DEVICE_NUM; i++)); do
            DEVICE_ID=$i RANK_ID=$i "$PYTHON" train.py --data_dir "$DATA_DIR" --distribute true \
                --device_target Ascend "$@" > "$LOG_DIR/rank_$i.log" 2>&1 &
            pids+=($!)
        done
        echo "$DEVICE_NUM processes started; logs in $LOG_DIR/rank_N.log"
        for pid in "${pids[@]}"; do wait "$pid" || status=1; done
        return $status
    }
    run_logged "$OUT" train.log --output_dir launch_ranks "$@"
    exit
fi
if [ "$FORM" = rank_table ]; then
    WORKER_NUM=$DEVICE_NUM LOCAL_WORKER_NUM=$DEVICE_NUM MASTER_ADDR=127.0.0.1 NODE_RANK=0
    MASTER_PORT=${MASTER_PORT:-8118}
fi
# msrun starts plain `python`: run it from the environment's bin so that python is ours
BIN=$(cd "$(dirname "$(command -v "$PYTHON")")" && pwd)
MSRUN=$BIN/msrun
[ -x "$MSRUN" ] || MSRUN=msrun
PATH=$BIN:$PATH run_logged "$OUT" train.log --output_dir "$MSRUN" --worker_num="$WORKER_NUM" \
    --local_worker_num="$LOCAL_WORKER_NUM" --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    --node_rank="$NODE_RANK" --log_dir="$LOG_DIR" --join=True \
    train.py --data_dir "$DATA_DIR" --distribute true "$@"
