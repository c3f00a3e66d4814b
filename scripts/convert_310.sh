#!/usr/bin/env bash
# The second route to an Ascend 310: the ONNX export, converted for Ascend by MindSpore Lite's
# converter_lite (--fmk=ONNX --optimize=ascend_oriented), whose ONNX LSTM nodes become CommonLSTM
# (mindir.ONNX_ASCEND_CONVERTER). Use it when the card refuses the MindIR route's DynamicRNN (the
# self-test, run_infer_310.sh --selftest, fails there). The converted model runs in the same app,
# the same way:
#   python export.py --ckpt_path CKPT --file_format ONNX --file_name dprnn     # any host
#   bash scripts/convert_310.sh dprnn.onnx dprnn_ascend [PRECISION]            # where Lite's converter is
#   bash scripts/run_infer_310.sh dprnn_ascend.mindir TEST_PATH y ascend
# Writes OUTPUT.mindir whole or not at all. PRECISION: the Ascend precision_mode (default preferred_fp32).
# converter_lite: $CONVERTER_LITE, else $LITE_HOME/tools/converter/converter/converter_lite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
if [ $# -lt 2 ]; then
    echo "usage: bash $0 ONNX_PATH OUTPUT_NAME [PRECISION]   (writes OUTPUT_NAME.mindir)" >&2
    exit 2
fi
ONNX=$1 OUTPUT=${2%.mindir} PRECISION=${3:-preferred_fp32}
CONVERTER=${CONVERTER_LITE:-${LITE_HOME:+$LITE_HOME/tools/converter/converter/converter_lite}}

[ -f "$ONNX" ] || { echo "error: $ONNX: no such ONNX file (make one with python export.py --ckpt_path CKPT --file_format ONNX)" >&2; exit 1; }
if [ -z "$CONVERTER" ] || [ ! -x "$CONVERTER" ]; then
    echo "error: MindSpore Lite's converter_lite is not installed${CONVERTER:+ at $CONVERTER}: set LITE_HOME to the unpacked MindSpore Lite cloud-side inference package (it holds tools/converter/converter/converter_lite), or CONVERTER_LITE to the tool" >&2
    exit 1
fi
case "$PRECISION" in
    preferred_fp32|enforce_fp32|enforce_fp16|enforce_origin|preferred_optimal) ;;
    *) echo "error: PRECISION must be preferred_fp32, enforce_fp32, enforce_fp16, enforce_origin or preferred_optimal, got $PRECISION" >&2; exit 2 ;;
esac
[ -d "$(dirname "$OUTPUT")" ] || { echo "error: $(dirname "$OUTPUT"): no such folder for OUTPUT_NAME" >&2; exit 1; }
# the operator check needs MindSpore and onnx, which a 310 host may lack: export.py ran it already
if "$PYTHON" -c "import mindspore, onnx" 2>/dev/null; then
    "$PYTHON" export.py --check_onnx "$ONNX" | tail -n 1
fi

work=$(mktemp -d "$(dirname "$OUTPUT")/.convert_310.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '[ascend_context]\nprecision_mode=%s\n' "$PRECISION" > "$work/ascend.cfg"
# converter_lite's libraries for it alone (as the app's, lite_app.app_env)
libs=${LITE_HOME:+$LITE_HOME/tools/converter/lib:$LITE_HOME/runtime/lib:}${LD_LIBRARY_PATH:-}
if ! LD_LIBRARY_PATH=$libs "$CONVERTER" --fmk=ONNX --modelFile="$ONNX" --outputFile="$work/model" --saveType=MINDIR \
        --optimize=ascend_oriented --configFile="$work/ascend.cfg" > "$work/converter.log" 2>&1; then
    echo "error: converter_lite could not convert $ONNX: $(grep -m 1 -i 'error' "$work/converter.log" || tail -n 1 "$work/converter.log")" >&2
    exit 1
fi
[ -s "$work/model.mindir" ] || { echo "error: converter_lite ended without writing a model: $(tail -n 1 "$work/converter.log")" >&2; exit 1; }
mv "$work/model.mindir" "$OUTPUT.mindir"
echo "converted $ONNX for Ascend ($PRECISION) to $OUTPUT.mindir: run it with bash scripts/run_infer_310.sh $OUTPUT.mindir TEST_PATH y ascend"
