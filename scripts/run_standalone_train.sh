#!/usr/bin/env bash
# Train on one device; the output is also kept in OUTPUT_DIR/train.log.
#   bash scripts/run_standalone_train.sh [train.py options]            # the demo: built-in data, demo config
#   bash scripts/run_standalone_train.sh DATA_DIR [train.py options]   # your preprocessed data, e.g.
#       bash scripts/run_standalone_train.sh data --output_dir outputs/run1 --device_target GPU
#   bash scripts/run_standalone_train.sh DEVICE_ID DATA_DIR [train.py options]   # the model zoo's form
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

ARGS=()
if [ $# -gt 0 ] && is_device_id "$1"; then
    ARGS+=(--device_id "$1")
    shift
fi
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    ARGS+=(--data_dir "$1")
    shift
else
    DEMO=outputs/demo
    if ! ls "$DEMO"/data/train.mindrecord* >/dev/null 2>&1; then
        echo "no $DEMO/data yet: making the demo LibriMix set and preprocessing it"
        [ -d "$DEMO/librimix/Libri2Mix" ] || "$PYTHON" scripts/make_demo_data.py --out_dir "$DEMO/librimix"
        "$PYTHON" preprocess.py --in_dir "$DEMO/librimix/Libri2Mix/wav8k/min" --out_dir "$DEMO/data"
    fi
    ARGS=(--config_path scripts/demo_config.yaml --resume auto "${ARGS[@]}")  # continues an earlier demo run
fi
ARGS+=("$@")
run_logged "$(config_value output_dir "${ARGS[@]}")" train.log --output_dir "$PYTHON" train.py "${ARGS[@]}"
