#!/usr/bin/env bash
# Evaluate a checkpoint on the test split (SI-SNRi, and SDRi with --cal_sdr).
#   bash scripts/run_eval.sh                                   # the demo's: outputs/demo/train/best.ckpt
#   bash scripts/run_eval.sh CKPT_PATH [DATA_DIR] [evaluate.py options, e.g. --eval_segment 4]
# A checkpoint written by train.py has its config.yaml beside it; it is used for the model settings.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
CKPT=outputs/demo/train/best.ckpt
DATA_DIR=outputs/demo/data
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then CKPT=$1; shift; fi
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then DATA_DIR=$1; shift; fi
CONFIG=$(dirname "$CKPT")/config.yaml
[ -f "$CONFIG" ] || CONFIG=default_config.yaml
exec "$PYTHON" evaluate.py --config_path "$CONFIG" --ckpt_path "$CKPT" --data_dir "$DATA_DIR" --cal_sdr "$@"
