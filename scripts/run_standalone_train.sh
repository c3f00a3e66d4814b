#!/usr/bin/env bash
# Train on one device.
#   bash scripts/run_standalone_train.sh [train.py options]            # the demo: built-in data, demo config
#   bash scripts/run_standalone_train.sh DATA_DIR [train.py options]   # your preprocessed data, e.g.
#       bash scripts/run_standalone_train.sh data --output_dir outputs/run1 --device_target GPU
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    DATA_DIR=$1
    shift
    exec "$PYTHON" train.py --data_dir "$DATA_DIR" "$@"
fi
DEMO=outputs/demo
if ! ls "$DEMO"/data/train.mindrecord* >/dev/null 2>&1; then
    echo "no $DEMO/data yet: making the demo LibriMix set and preprocessing it"
    [ -d "$DEMO/librimix/Libri2Mix" ] || "$PYTHON" scripts/make_demo_data.py --out_dir "$DEMO/librimix"
    "$PYTHON" preprocess.py --in_dir "$DEMO/librimix/Libri2Mix/wav8k/min" --out_dir "$DEMO/data"
fi
exec "$PYTHON" train.py --config_path scripts/demo_config.yaml "$@"
