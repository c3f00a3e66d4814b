#!/usr/bin/env bash
# The test suite on every core of this machine (pytest-xdist), as CI runs it:
#   bash scripts/run_tests.sh                        # everything; installs Chromium for the browser tests where it is missing
#   bash scripts/run_tests.sh --fast                 # the edit-test loop (model, loss, config, bad input): no browser needed
#   bash scripts/run_tests.sh tests/test_loss.py -k pit   # test files first, then any pytest options (-n 1: one process)
# Run the README's set-up command first: it makes .venv from requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
# where tests/test_report.py's browser lives (scripts/browser.py reads the same two variables)
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium} CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}

browser_missing() { ! [ -x "$CHROMIUM" ] || ! [ -x "$CHROMEDRIVER" ]; }

# a test file to a process, so that each file's shared fixtures (trained checkpoints, data) are
# built once; the fast tier has no costly ones, and test by test it balances the two cores better
select=(--dist loadscope)
if [ "${1:-}" = --fast ]; then
    shift
    select=(-m fast --dist load)
elif browser_missing; then
    install="apt-get update && apt-get install -y chromium chromium-driver"
    if [ "$(id -u)" = 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
        as_root=(sudo)
    else
        echo "error: the browser tests need Chromium and its driver ($CHROMIUM, $CHROMEDRIVER), and installing them needs root: run '$install' as root, then this command again" >&2
        exit 1
    fi
    echo "installing Chromium and its driver for the browser tests: ${as_root[*]:+${as_root[*]} }$install"
    "${as_root[@]}" apt-get update -qq >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    if browser_missing; then
        echo "error: apt-get installed chromium and chromium-driver, but $CHROMIUM or $CHROMEDRIVER is not there: set CHROMIUM and CHROMEDRIVER to where they are" >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(None in map(u.find_spec, ('mindspore', 'xdist')))" 2>/dev/null; then
    echo "error: $PYTHON lacks the project's packages: run the README's set-up command first (it makes .venv), or $PYTHON -m pip install -r requirements.txt" >&2
    exit 1
fi
# no test file or folder named first: the whole suite
first=${1:-}
[ -e "${first%%::*}" ] || set -- tests "$@"
# one test process per core, each with 4 GB at hand (one peaks near 4 GB)
memory_gb=$(awk '/MemAvailable/ {print int($2 / 4194304)}' /proc/meminfo)
workers=$(( $(nproc) < memory_gb ? $(nproc) : memory_gb ))
exec "$PYTHON" -m pytest -q -n "$(( workers > 1 ? workers : 1 ))" "${select[@]}" "$@"
