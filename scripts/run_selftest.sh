#!/usr/bin/env bash
# First-run self-test of this host's device: a few training steps, a forward pass against golden
# outputs computed on CPU, export in the device's form and its operator check, the exported MindIR
# run (and built by the Lite app where ascend310_infer/out/dprnn_310 exists). Prints a PASS/FAIL
# table; exit status 1 if anything failed. Run it first on a new Ascend or GPU host.
#   bash scripts/run_selftest.sh [DEVICE_TARGET(Ascend|GPU|CPU|auto)] [DEVICE_ID]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
if [ -n "${LITE_HOME:-}" ]; then
    export LD_LIBRARY_PATH=$LITE_HOME/runtime/lib:$LITE_HOME/runtime/third_party/dnnl:$LITE_HOME/tools/converter/lib:${LD_LIBRARY_PATH:-}
fi
"$PYTHON" selftest.py --device_target "${1:-auto}" --device_id "${2:-0}"
