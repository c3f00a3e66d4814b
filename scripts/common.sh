# Shared by the launchers (sourced from the project root, not run): the Python to use, settings as
# train.py / evaluate.py resolve them, and logs kept in the output folder as the model zoo's are.
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
LAUNCHER=$(printf '%q ' bash "$0" "$@")

# hold DIR OPTION: this launcher takes DIR (made if missing) for itself with the lock the scripts
# take (fileio.one_writer), through a descriptor the shell keeps open: the hold lasts as long as the
# launcher and what it starts, which find it theirs. A second launcher or script into DIR stops with
# one line naming this one and what to do (fileio.way_out(OPTION): wait, or choose another OPTION),
# status 1. The lock file goes when the launcher exits.
hold() {
    local dir=$1 option=$2 lock=$1/.writer.lock status  # fileio.LOCK
    mkdir -p "$dir"
    while :; do
        exec {HOLD_FD}<>"$lock"
        status=0
        "$PYTHON" -c 'import sys; from fileio import hold_for_shell
hold_for_shell(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])' \
            "$HOLD_FD" "$lock" "$$" "${LAUNCHER% }" "$option" || status=$?
        [ "$status" -eq 75 ] || break  # the file went or changed while it was opened: open it again
        exec {HOLD_FD}>&-
    done
    if [ "$status" -ne 0 ]; then
        exec {HOLD_FD}>&-
        return "$status"
    fi
    HELD_LOCK=$lock
    trap release EXIT
}

# release: end the hold (the lock file first, then the lock: see fileio.lock_on)
release() {
    if [ -n "${HELD_LOCK:-}" ]; then
        rm -f "$HELD_LOCK"
        exec {HOLD_FD}>&-
        HELD_LOCK=
    fi
}

# is_device_id ARG: the model zoo's leading DEVICE_ID argument (a number that is not a path)
is_device_id() { [[ $1 =~ ^[0-9]+$ ]] && [ ! -e "$1" ]; }

# config_value KEY [script options]: KEY as load_config resolves it from those options; empty when
# the options are wrong (the script itself then says what is wrong)
config_value() {
    local key=$1
    shift
    "$PYTHON" -c 'import sys; from config import load_config
print(getattr(load_config(sys.argv[2:], verbose=False), sys.argv[1]))' "$key" "$@" 2>/dev/null || true
}

# run_logged DIR NAME OPTION COMMAND...: COMMAND, holding DIR (hold DIR OPTION), with its output on the
# terminal and appended to DIR/NAME as it runs (a resumed run keeps the earlier run's log); the exit
# status is COMMAND's. A second job into DIR stops before its first log line. A run that fails
# without changing anything else in DIR (bad input) leaves DIR as it was: its log lines are taken
# back and the folders made for it removed. With DIR empty (the options are wrong) or not creatable,
# COMMAND runs unlogged and reports the problem itself.
run_logged() {
    local dir=$1 name=$2 option=$3
    shift 3
    local first_new="" path=$dir
    while [ -n "$path" ] && [ ! -e "$path" ] && [ ! -L "$path" ]; do first_new=$path; path=$(dirname "$path"); done
    if [ -z "$dir" ] || ! mkdir -p "$dir" 2>/dev/null; then
        "$@"
        return
    fi
    hold "$dir" "$option" || return
    local log=$dir/$name had_log=false size=0 stamp status=0
    [ -f "$log" ] && had_log=true && size=$(stat -c %s "$log")
    stamp=$(mktemp)
    echo "=== $(date '+%F %T') $*" >> "$log"
    "$@" 2>&1 | tee -a "$log" || status=$?
    if [ "$status" -ne 0 ] && [ -z "$(find "$dir" -mindepth 1 -newer "$stamp" ! -path "$log" -print -quit)" ]; then
        if $had_log; then truncate -s "$size" "$log"; else rm -f "$log"; fi
        release
        path=$dir
        while [ -n "$first_new" ] && rmdir "$path" 2>/dev/null && [ "$path" != "$first_new" ]; do
            path=$(dirname "$path")
        done
    fi
    rm -f "$stamp"
    return "$status"
}
