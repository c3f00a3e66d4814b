#!/usr/bin/env bash
# Builds ascend310_infer/out/dprnn_310 on an Ascend 310 host with the Ascend toolkit and the
# MindSpore Ascend build installed (it links libmindspore.so from that installation).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
MINDSPORE_PATH=$("$PYTHON" -c "import mindspore, os; print(os.path.dirname(mindspore.__file__))")
if [ ! -f "$MINDSPORE_PATH/lib/libmindspore.so" ] || [ ! -d "$MINDSPORE_PATH/include/api" ]; then
    echo "error: $MINDSPORE_PATH has no lib/libmindspore.so or include/api: install MindSpore's Ascend build" >&2
    exit 1
fi
mkdir -p out
cd out
cmake .. -DMINDSPORE_PATH="$MINDSPORE_PATH"
make
