# Shared by the launchers (sourced from the project root, not run): the Python to use, settings as
# train.py / evaluate.py resolve them, and logs kept in the output folder as the model zoo's are.
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

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

# run_logged DIR NAME COMMAND...: COMMAND's output on the terminal and appended to DIR/NAME as it
# runs (a resumed run keeps the earlier run's log); the exit status is COMMAND's. A run that fails
# without changing anything else in DIR (bad input) leaves DIR as it was: its log lines are taken
# back and the folders made for it removed. With DIR empty (the options are wrong) or not creatable,
# COMMAND runs unlogged and reports the problem itself.
run_logged() {
    local dir=$1 name=$2
    shift 2
    local first_new="" path=$dir
    while [ -n "$path" ] && [ ! -e "$path" ] && [ ! -L "$path" ]; do first_new=$path; path=$(dirname "$path"); done
    if [ -z "$dir" ] || ! mkdir -p "$dir" 2>/dev/null; then
        "$@"
        return
    fi
    local log=$dir/$name had_log=false size=0 stamp status=0
    [ -f "$log" ] && had_log=true && size=$(stat -c %s "$log")
    stamp=$(mktemp)
    echo "=== $(date '+%F %T') $*" >> "$log"
    "$@" 2>&1 | tee -a "$log" || status=$?
    if [ "$status" -ne 0 ] && [ -z "$(find "$dir" -mindepth 1 -newer "$stamp" ! -path "$log" -print -quit)" ]; then
        if $had_log; then truncate -s "$size" "$log"; else rm -f "$log"; fi
        path=$dir
        while [ -n "$first_new" ] && rmdir "$path" 2>/dev/null && [ "$path" != "$first_new" ]; do
            path=$(dirname "$path")
        done
    fi
    rm -f "$stamp"
    return "$status"
}
