#!/usr/bin/env bash
# First-run self-test of this host's device: a few training steps, a forward pass against golden
# outputs computed on CPU, export in the device's form and its operator check, the exported MindIR
# run (and built by the Lite app where ascend310_infer/out/dprnn_310 exists). Prints a PASS/FAIL
# table; exit status 1 if anything failed. Run it first on a new Ascend or GPU host. The app gets
# LITE_HOME's runtime libraries on its own LD_LIBRARY_PATH (lite_app.app_env), this Python process not.
# A 310 inference host without MindSpore: bash scripts/run_infer_310.sh --selftest.
#   bash scripts/run_selftest.sh [DEVICE_TARGET(Ascend|GPU|CPU|auto)] [DEVICE_ID]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
"$PYTHON" selftest.py --device_target "${1:-auto}" --device_id "${2:-0}"
