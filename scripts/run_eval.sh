#!/usr/bin/env bash
# Evaluate a checkpoint on the test split (SI-SNRi and SDRi); the output is also kept in
# RESULTS_DIR/eval.log.
#   bash scripts/run_eval.sh                                   # the demo's: outputs/demo/train/best.ckpt
#   bash scripts/run_eval.sh CKPT_PATH [DATA_DIR] [evaluate.py options, e.g. --eval_protocol zoo]
#   bash scripts/run_eval.sh DEVICE_ID CKPT_PATH DATA_DIR [evaluate.py options]   # the model zoo's form
# A checkpoint written by train.py knows its model settings; for an older one add --config_path.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

DEVICE=()
if [ $# -gt 1 ] && is_device_id "$1"; then
    DEVICE=(--device_id "$1")
    shift
fi
CKPT=outputs/demo/train/best.ckpt
DATA_DIR=outputs/demo/data
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then CKPT=$1; shift; fi
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then DATA_DIR=$1; shift; fi
ARGS=(--ckpt_path "$CKPT" --data_dir "$DATA_DIR" --cal_sdr "${DEVICE[@]}" "$@")
run_logged "$(config_value results_dir "${ARGS[@]}")" eval.log --results_dir "$PYTHON" evaluate.py "${ARGS[@]}"
