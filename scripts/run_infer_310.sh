#!/usr/bin/env bash
# The Ascend 310 inference path: inputs -> inference -> SI-SNRi / SDRi; everything it prints is also
# kept in INFER_DIR/infer.log (INFER_DIR: infer_310 unless set).
#   bash scripts/run_infer_310.sh --selftest [DEVICE_ID]     # first, on a new 310 host: the built app on
#                                                            # the card against golden outputs (no MindSpore)
#   bash scripts/run_infer_310.sh MINDIR_PATH TEST_PATH NEED_PREPROCESS [BACKEND] [DEVICE_ID]
# TEST_PATH: the preprocessed data folder (its test MindRecord); NEED_PREPROCESS: y to (re)make the
# input bins in INFER_DIR, n to reuse them. BACKEND:
#   ascend   the MindSpore Lite app (ascend310_infer/build.sh) on Ascend device DEVICE_ID (default 0)
#   app_cpu  the same app on MindSpore Lite's CPU backend
#   cpu      ascend310_infer/infer_cpu.py: the same MindIR on CPU with MindSpore Lite's Python
#            package if installed, else MindSpore; same result files
# default: ascend when the app is built, cpu otherwise. The ascend backend takes the ascend form of
# the MindIR (export.py --export_target ascend), app_cpu and cpu the cpu form (--export_target cpu);
# a file of the other form is refused before anything runs. PRECISION (environment) is the app's
# --precision, Lite's Ascend precision mode: preferred_fp32 (default), enforce_fp16, enforce_fp32, ...
# A model converted from ONNX by scripts/convert_310.sh runs with the ascend backend the same way.
# PROTOCOL (environment): pieces (default) or zoo, the model zoo's 4-s segment scoring
# (evaluate.py --eval_protocol); it takes effect when the inputs are made (NEED_PREPROCESS y).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
if [ "${1:-}" = --selftest ]; then
    exec "$PYTHON" ascend310_infer/selftest_310.py --device_id "${2:-0}" "${@:3}"
fi
if [ $# -lt 3 ]; then
    echo "usage: bash $0 MINDIR_PATH TEST_PATH NEED_PREPROCESS(y|n) [BACKEND(ascend|app_cpu|cpu)] [DEVICE_ID]" >&2
    exit 2
fi
MINDIR=$1 TEST_PATH=$2 NEED_PREPROCESS=$3
APP=ascend310_infer/out/dprnn_310
BACKEND=${4:-$( [ -x "$APP" ] && echo ascend || echo cpu )}
DEVICE_ID=${5:-0}
INFER_DIR=${INFER_DIR:-infer_310}
CONFIG=$(dirname "$MINDIR")/config.yaml
[ -f "$CONFIG" ] || CONFIG=default_config.yaml
# Lite's runtime libraries for the app alone: that folder ships its own libmindspore_core.so and glog,
# which the MindSpore of this script's Python steps could load in place of their own
APP_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
if [ -n "${LITE_HOME:-}" ]; then
    APP_LIBRARY_PATH=$LITE_HOME/runtime/lib:$LITE_HOME/runtime/third_party/dnnl:$LITE_HOME/tools/converter/lib:$APP_LIBRARY_PATH
fi

[ -f "$MINDIR" ] || { echo "error: $MINDIR: no such MindIR file (make one with export.py)" >&2; exit 1; }
case "$BACKEND" in
    ascend|app_cpu) [ -x "$APP" ] || { echo "error: $APP not built: set LITE_HOME and run bash ascend310_infer/build.sh" >&2; exit 1; } ;;
    cpu) ;;
    *) echo "error: BACKEND must be ascend, app_cpu or cpu, got $BACKEND" >&2; exit 2 ;;
esac
FORM=$( [ "$BACKEND" = ascend ] && echo ascend || echo cpu )
infer() {
    "$PYTHON" export.py --check_mindir "$MINDIR" --export_target "$FORM" || return
    if [ "$NEED_PREPROCESS" = "y" ]; then
        "$PYTHON" preprocess_310.py --config_path "$CONFIG" --data_dir "$TEST_PATH" --infer_dir "$INFER_DIR" \
            --eval_protocol "${PROTOCOL:-pieces}" || return
    fi
    # the previous run's results only (a failed run must not be scored with them); nothing else there
    [ ! -d "$INFER_DIR/result_Files" ] || find "$INFER_DIR/result_Files" -maxdepth 1 -name '*_0.bin' -delete
    # one line per input file: into the log only
    case "$BACKEND" in
        ascend) LD_LIBRARY_PATH=$APP_LIBRARY_PATH "$APP" "$MINDIR" "$INFER_DIR/input" "$INFER_DIR/result_Files" --device ascend \
                    --device_id "$DEVICE_ID" --precision "${PRECISION:-preferred_fp32}" ;;
        app_cpu) LD_LIBRARY_PATH=$APP_LIBRARY_PATH "$APP" "$MINDIR" "$INFER_DIR/input" "$INFER_DIR/result_Files" --device cpu \
                    --precision "${PRECISION:-preferred_fp32}" ;;
        cpu) "$PYTHON" ascend310_infer/infer_cpu.py "$MINDIR" "$INFER_DIR/input" "$INFER_DIR/result_Files" ;;
    esac >> "$INFER_DIR/infer.log" || return
    echo "inference ($BACKEND): $(tail -n 1 "$INFER_DIR/infer.log")"
    "$PYTHON" postprocess.py --config_path "$CONFIG" --infer_dir "$INFER_DIR" --results_dir "$INFER_DIR/results" --cal_sdr
}
run_logged "$INFER_DIR" infer.log INFER_DIR infer
