#!/usr/bin/env bash
# The Ascend 310 inference path: inputs -> inference -> SI-SNRi / SDRi.
#   bash scripts/run_infer_310.sh MINDIR_PATH TEST_PATH NEED_PREPROCESS [BACKEND] [DEVICE_ID]
# TEST_PATH: the preprocessed data folder (its test MindRecord); NEED_PREPROCESS: y to (re)make the
# input bins in infer_310/, n to reuse them. BACKEND: ascend (the C++ app, built with
# ascend310_infer/build.sh on a 310 host) or cpu (the same MindIR run by MindSpore on CPU, writing
# the same result files); default ascend when the app is built, cpu otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    echo "usage: bash $0 MINDIR_PATH TEST_PATH NEED_PREPROCESS(y|n) [BACKEND(ascend|cpu)] [DEVICE_ID]" >&2
    exit 2
fi
MINDIR=$1 TEST_PATH=$2 NEED_PREPROCESS=$3
APP=ascend310_infer/out/dprnn_310
BACKEND=${4:-$( [ -x "$APP" ] && echo ascend || echo cpu )}
DEVICE_ID=${5:-0}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
INFER_DIR=${INFER_DIR:-infer_310}
CONFIG=$(dirname "$MINDIR")/config.yaml
[ -f "$CONFIG" ] || CONFIG=default_config.yaml

[ -f "$MINDIR" ] || { echo "error: $MINDIR: no such MindIR file (make one with export.py)" >&2; exit 1; }
if [ "$NEED_PREPROCESS" = "y" ]; then
    "$PYTHON" preprocess_310.py --config_path "$CONFIG" --data_dir "$TEST_PATH" --infer_dir "$INFER_DIR"
fi
rm -rf "$INFER_DIR/result_Files"
case "$BACKEND" in
    ascend)
        [ -x "$APP" ] || { echo "error: $APP not built: run bash ascend310_infer/build.sh on the 310 host" >&2; exit 1; }
        "$APP" "$MINDIR" "$INFER_DIR/input" "$INFER_DIR/result_Files" "$DEVICE_ID" > "$INFER_DIR/infer.log"
        ;;
    cpu)
        "$PYTHON" ascend310_infer/infer_cpu.py "$MINDIR" "$INFER_DIR/input" "$INFER_DIR/result_Files" > "$INFER_DIR/infer.log"
        ;;
    *)
        echo "error: BACKEND must be ascend or cpu, got $BACKEND" >&2; exit 2 ;;
esac
tail -n 1 "$INFER_DIR/infer.log"
"$PYTHON" postprocess.py --config_path "$CONFIG" --infer_dir "$INFER_DIR" --results_dir "$INFER_DIR/results" --cal_sdr
