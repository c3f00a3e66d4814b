#!/usr/bin/env bash
# The whole project on built-in demo data, on this machine's CPU, in one command:
#   demo LibriMix set -> preprocess.py -> train.py -> evaluate.py -> export.py (MindIR for CPU and for
#   Ascend, ONNX)
#   -> the Ascend 310 path on its CPU backend -> the ONNX model in onnxruntime
#   -> separate.py on one test mixture (with --plot)
#   evaluate.py and separate.py write listening reports (report.html, listen.html) to open in a browser
#
#   bash scripts/run_demo.sh            # about 12 minutes on 2 cores; outputs in outputs/demo/
#   bash scripts/run_demo.sh --quick    # a minute or two on a tiny set (CI); outputs in outputs/demo_quick/
#   DEMO_DIR=elsewhere bash scripts/run_demo.sh [--quick]   # outputs in elsewhere/
# One demo at a time writes into its folder: a second one started meanwhile stops in one line.
set -euo pipefail
[ -z "${DEMO_DIR:-}" ] || DEMO_DIR=$(realpath -m "$DEMO_DIR")
cd "$(dirname "$0")/.."
source scripts/common.sh

case "$*" in
    --quick)
        OUT=${DEMO_DIR:-outputs/demo_quick}
        MAKE_DATA=(--n_train 16 --n_dev 4 --n_test 4)
        TRAIN=(--epochs 1) ;;
    "")
        OUT=${DEMO_DIR:-outputs/demo}
        MAKE_DATA=()
        TRAIN=() ;;
    *)
        echo "error: unknown arguments '$*': bash scripts/run_demo.sh [--quick]" >&2
        exit 2 ;;
esac
CONFIG=scripts/demo_config.yaml
hold "$OUT" ""
started=$(date +%s)
step() { echo; echo "=== $1 ($(( $(date +%s) - started )) s so far)"; }

step "1/8 demo LibriMix set"
[ -d "$OUT/librimix/Libri2Mix" ] || "$PYTHON" scripts/make_demo_data.py --out_dir "$OUT/librimix" "${MAKE_DATA[@]}"
step "2/8 preprocess to MindRecord"
"$PYTHON" preprocess.py --config_path "$CONFIG" --in_dir "$OUT/librimix/Libri2Mix/wav8k/min" --out_dir "$OUT/data" | tail -n 4
step "3/8 train"
# an earlier demo's run (finished or killed) is continued, not trained over
"$PYTHON" train.py --config_path "$CONFIG" --data_dir "$OUT/data" --output_dir "$OUT/train" --resume auto "${TRAIN[@]}" \
    | grep -E "^(epoch [0-9]+/|training on|early stop)" || true
[ -f "$OUT/train/best.ckpt" ] || { echo "error: training wrote no $OUT/train/best.ckpt" >&2; exit 1; }
step "4/8 evaluate (SI-SNRi, SDRi)"
"$PYTHON" evaluate.py --ckpt_path "$OUT/train/best.ckpt" \
    --data_dir "$OUT/data" --results_dir "$OUT/results" --cal_sdr | grep -E "^Average"
step "5/8 export MindIR (cpu form; ascend form for the 310) and ONNX"
"$PYTHON" export.py --ckpt_path "$OUT/train/best.ckpt" --export_target cpu --file_name "$OUT/dprnn" | tail -n 1
"$PYTHON" export.py --ckpt_path "$OUT/train/best.ckpt" --export_target ascend --file_name "$OUT/dprnn_ascend" | tail -n 2
"$PYTHON" export.py --ckpt_path "$OUT/train/best.ckpt" --file_format ONNX --file_name "$OUT/dprnn" | tail -n 1
cp "$OUT/train/config.yaml" "$OUT/config.yaml"
step "6/8 the 310 path on its CPU backend"
INFER_DIR="$OUT/infer_310" PYTHON="$PYTHON" bash scripts/run_infer_310.sh "$OUT/dprnn.mindir" "$OUT/data" y cpu \
    | grep -E "^(Average|inference)"
step "7/8 the ONNX model in onnxruntime (4-s pieces, as the 310 path)"
"$PYTHON" evaluate.py --onnx "$OUT/dprnn.onnx" --data_dir "$OUT/data" --results_dir "$OUT/onnx_results" \
    --cal_sdr | grep -E "^Average"
step "8/8 separate one test mixture"
mixture=$(ls "$OUT"/librimix/Libri2Mix/wav8k/min/test/mix_clean/*.wav | head -n 1)
"$PYTHON" separate.py --ckpt_path "$OUT/train/best.ckpt" \
    "$mixture" --out_dir "$OUT/separated" --plot --overwrite | tail -n 2

"$PYTHON" - "$OUT" "$(( $(date +%s) - started ))" <<'PY'
import json, sys
from pathlib import Path
out, seconds = Path(sys.argv[1]), int(sys.argv[2])
ev = json.loads((out / "results" / "summary.json").read_text())
p310 = json.loads((out / "infer_310" / "results" / "summary.json").read_text())
onnx = json.loads((out / "onnx_results" / "summary.json").read_text())
log = (out / "train" / "train_log.csv").read_text().splitlines()
last = dict(zip(log[0].split(","), log[-1].split(",")))
print(f"""
=== demo done in {seconds // 60} min {seconds % 60} s
training      {len(log) - 1} epochs, last train SI-SNR {float(last['train_si_snr']):.2f} dB, valid {float(last['valid_si_snr']):.2f} dB
              {out}/train/ (best.ckpt, train_log.csv, train_curves.png)
evaluation    SI-SNRi {ev['si_snri']:.2f} dB, SDRi {ev['sdri']:.2f} dB on {ev['utterances']} test mixtures
              {out}/results/per_utterance.csv
              {out}/results/report.html (open it in a browser: the worst and best to hear, spectrograms, histogram, every score)
export        {out}/dprnn.mindir (CPU, GPU: cpu form), {out}/dprnn_ascend.mindir (Ascend 310), {out}/dprnn.onnx
310 path/CPU  SI-SNRi {p310['si_snri']:.2f} dB, SDRi {p310['sdri']:.2f} dB (4-s pieces)  {out}/infer_310/
ONNX          SI-SNRi {onnx['si_snri']:.2f} dB, SDRi {onnx['sdri']:.2f} dB (4-s pieces, onnxruntime)  {out}/onnx_results/
separation    {out}/separated/ (the two talkers' wavs and the spectrograms PNG)
              {out}/separated/listen.html (open it in a browser: the mixture and the talkers, with spectrograms)""")
PY
