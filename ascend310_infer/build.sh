#!/usr/bin/env bash
# Builds ascend310_infer/out/dprnn_310 against MindSpore Lite's cloud-side inference package.
#   export LITE_HOME=/path/to/mindspore-lite-2.10.0-linux-x64   # or -linux-aarch64 on ARM 310 hosts
#   bash ascend310_infer/build.sh
# Needs CMake >= 3.14 and GCC >= 7.3. On an Ascend 310 host, source the Ascend toolkit's set_env.sh
# first; on a plain Linux host the same binary runs with --device cpu.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${LITE_HOME:-}" ]; then
    echo "error: LITE_HOME is not set: download mindspore-lite-<version>-linux-<arch>.tar.gz (cloud-side inference) from https://www.mindspore.cn/lite/docs/en/master/use/downloads.html, unpack it and export LITE_HOME=<its folder>" >&2
    exit 1
fi
if [ ! -f "$LITE_HOME/runtime/include/api/model.h" ] || [ ! -f "$LITE_HOME/runtime/lib/libmindspore-lite.so" ]; then
    echo "error: LITE_HOME=$LITE_HOME has no runtime/include/api/model.h or runtime/lib/libmindspore-lite.so: point it at the unpacked MindSpore Lite cloud-side inference package" >&2
    exit 1
fi
command -v cmake >/dev/null || { echo "error: cmake not found: install CMake >= 3.14" >&2; exit 1; }
mkdir -p out
cd out
cmake .. -DLITE_HOME="$LITE_HOME"
make
echo "built $(pwd)/dprnn_310; check it on the card first: bash scripts/run_infer_310.sh --selftest (keep LITE_HOME set: the launchers put its libraries on the app's LD_LIBRARY_PATH alone)"
