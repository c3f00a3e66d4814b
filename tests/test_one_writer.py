"""One writer per folder (fileio.one_writer): the same job started twice into one place, as a user
with background jobs on a shared machine starts it, and a job killed with -9 while it held the place.

Each entry point is started twice, the second half a second after the first, as processes. Whichever
takes the folder first is then frozen (SIGSTOP) until the other has exited, so the other always
meets a held folder, however the two were scheduled: it must stop with the one line naming the
first, and change nothing in the folder, not even a time stamp (`tree` sees inodes, sizes and
times). The first then finishes alone, so what the folder holds afterwards is one run's work:
exactly the names one run writes, with no lock or temporary left. Before that, a run of the same
command is killed with -9 as soon as it holds the folder: its lock file stays, and must not stop
the runs after it.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
from helpers import TINY_TRAINING, leftovers, mean_column, tree, write_310_inputs

import fileio
from checkpoint import MODEL_ARGS, build_network, model_args, save_checkpoint
from config import load_config
from fileio import LOCK, FolderInUse, atomic_path, one_writer, run_own

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_TRAINING + ["--export_length", "1", "--device_target", "CPU"]


def hold_in_a_process(folder, seconds):
    """A process (no MindSpore: it starts in a blink) that holds `folder` for `seconds`."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from fileio import one_writer\n"
            "with one_writer(sys.argv[2], '--out_dir'):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[3]))\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(folder), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "held\n"
    return process


def test_a_second_run_is_refused_naming_the_first_and_what_to_do(tmp_path):
    folder = tmp_path / "out"
    first = hold_in_a_process(folder, 30)
    try:
        with pytest.raises(FolderInUse) as refused:
            with one_writer(folder, "--results_dir"):
                pytest.fail("a second writer got in")
        held = (folder / LOCK).read_text().splitlines()
        assert held == [str(first.pid), shlex.join(["-c", *first.args[3:]])]  # python -c's sys.argv
        assert str(refused.value) == (f"{folder}: another run is writing into it (pid {first.pid}: {held[1]}); "
                                      f"wait for it to end, or choose another --results_dir")
    finally:
        first.kill()
        first.wait()


def test_a_run_killed_at_any_point_of_taking_the_folder_does_not_block_the_next(tmp_path):
    """What a kill -9 can leave: an empty lock file (killed right after creating it), one naming the
    killed process (killed while it held the folder), none (killed after letting go). The operating
    system released the lock itself in each case."""
    leftovers = {"empty": "", "named": "4194303\npython train.py --output_dir out\n", "none": None}
    for name, text in leftovers.items():
        folder = tmp_path / name
        folder.mkdir()
        if text is not None:
            (folder / LOCK).write_text(text)
        with one_writer(folder, "--out_dir"):
            assert (folder / LOCK).read_text().splitlines()[0] == str(os.getpid())
        assert not (folder / LOCK).exists(), name

    killed = hold_in_a_process(tmp_path / "killed", 30)
    killed.kill()  # SIGKILL
    killed.wait()
    assert (tmp_path / "killed" / LOCK).read_text().startswith(f"{killed.pid}\n")
    with one_writer(tmp_path / "killed", "--out_dir"):
        pass
    assert not list((tmp_path / "killed").iterdir())


def test_a_failed_run_leaves_no_folder_and_no_lock(tmp_path):
    folder = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with one_writer(folder, "--out_dir"):
            assert (folder / LOCK).exists()
            raise RuntimeError("bad input found after the folder was taken")
    assert not (tmp_path / "new").exists()


def test_a_launcher_holds_its_folder_for_what_it_starts_and_only_for_that(tmp_path):
    """scripts/common.sh `hold`: the launcher's own processes write into its folder; another process
    is refused, naming the launcher; a launcher killed with -9 keeps it held while a process it
    started still runs (that one may still be writing), and frees it when that ends too."""
    folder = tmp_path / "out"
    launcher = tmp_path / "launcher.sh"
    launcher.write_text(f"""set -euo pipefail
cd {shlex.quote(str(ROOT))}
source scripts/common.sh
hold {shlex.quote(str(folder))} --results_dir
"$PYTHON" -c 'import sys; sys.path.insert(0, "."); from fileio import one_writer
with one_writer(sys.argv[1], "--results_dir"): print("held", flush=True)' {shlex.quote(str(folder))}
sleep 30 &
echo "started $!"
wait
""")
    env = dict(os.environ, PYTHON=sys.executable)
    running = subprocess.Popen(["bash", str(launcher)], stdout=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    assert running.stdout.readline() == "held\n"  # its own process wrote into the held folder
    assert running.stdout.readline().startswith("started ")  # a process of its own runs, holding the descriptor
    try:
        with pytest.raises(FolderInUse, match=re.escape(f"(pid {running.pid}: bash {launcher}); wait for it to end")):
            with one_writer(folder, "--results_dir"):
                pass
        os.kill(running.pid, signal.SIGKILL)  # the launcher only: its sleep still runs
        running.wait()
        with pytest.raises(FolderInUse, match=re.escape(f"(pid {running.pid}, bash {launcher}, has ended, but a "
                                                        f"process it started holds {folder / LOCK} (fuser -v")):
            with one_writer(folder, "--results_dir"):
                pass
    finally:
        with suppress(ProcessLookupError):
            os.killpg(running.pid, signal.SIGKILL)
    for _ in range(100):  # the kernel lets go of the lock when the last holder is reaped
        try:
            with one_writer(folder, "--results_dir"):
                break
        except FolderInUse:
            time.sleep(0.05)
    else:
        pytest.fail("the folder stayed held after the launcher's processes ended")


def test_temporaries_are_the_runs_own_and_a_dead_runs_are_removed(tmp_path):
    target = tmp_path / "summary.json"
    alive = os.getppid()  # a process that runs: its temporary is another run's work in progress
    others = [target.with_name(f".summary.json.{alive}.partial.json"), target.with_name(f".summary.json.{alive}.old")]
    dead = [target.with_name(".summary.json.4194303.partial.json"), target.with_name(".summary.json.4194303.old")]
    for path in others + dead:
        path.write_text("another run's")
    with atomic_path(target) as tmp:
        assert tmp == target.with_name(f".summary.json.{os.getpid()}.partial.json")
        Path(tmp).write_text("mine")
    assert target.read_text() == "mine"
    assert all(p.read_text() == "another run's" for p in others) and not any(p.exists() for p in dead)
    assert run_own(tmp_path / "x.wav", "float.wav") == tmp_path / f".x.wav.{os.getpid()}.float.wav"


@pytest.fixture(scope="module")
def inputs(prepared, librimix, tmp_path_factory):
    """What the entry points read: the data, a tiny checkpoint carrying its settings, a 310 folder
    with results, a test mixture; {name: path}."""
    from ascend310_infer.infer_cpu import infer_folder
    from mindir import export_network
    cfg, data_dir = prepared
    base = tmp_path_factory.mktemp("one_writer")
    cfg = load_config(["--data_dir", str(data_dir), *TINY], verbose=False)
    net = build_network(cfg.group("model"))
    save_checkpoint(net, base / "tiny.ckpt", {MODEL_ARGS: model_args(cfg)})
    mindir, _ = export_network(net, str(base / "tiny"), "MINDIR", cfg.samples("export_length"), "cpu")
    write_310_inputs(cfg, base / "infer")
    infer_folder(mindir, base / "infer" / "input", base / "infer" / "result_Files")
    mixture = sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0]
    return dict(librimix=librimix, data=data_dir, ckpt=base / "tiny.ckpt", infer=base / "infer", mixture=mixture)


def scores_agree(out):
    summary = json.loads((out / "summary.json").read_text())
    assert summary["si_snri"] == pytest.approx(mean_column(out / "per_utterance.csv", "SI-SNRi"), abs=1e-9)


RESULTS = {"per_utterance.csv", "summary.json", "report.html", "report_audio"}
# (script, its arguments, the place it writes (out: a fresh folder), the lock file in it, the names one
# run leaves there, a check of what it wrote)
CASES = [
    ("preprocess.py", ["--in_dir", "{librimix}", "--out_dir", "{out}", "--shard_num", "2"], LOCK,
     lambda i: set(os.listdir(i["data"])),
     lambda out, i: json.loads((out / "tt" / "mix.json").read_text())
     == json.loads((i["data"] / "tt" / "mix.json").read_text())),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}", "--max_steps", "4", *TINY], LOCK,
     lambda i: {"config.yaml", "dprnn-e000-s00000004.ckpt"}, None),
    ("evaluate.py", ["--ckpt_path", "{ckpt}", "--data_dir", "{data}", "--results_dir", "{out}", "--device_target", "CPU"],
     LOCK, lambda i: RESULTS, lambda out, i: scores_agree(out)),
    ("separate.py", ["--ckpt_path", "{ckpt}", "{mixture}", "--out_dir", "{out}", "--device_target", "CPU"], LOCK,
     lambda i: {f"{i['mixture'].stem}_s1.wav", f"{i['mixture'].stem}_s2.wav", "listen.html"}, None),
    ("export.py", ["--ckpt_path", "{ckpt}", "--file_name", "{out}/dprnn", "--device_target", "CPU"], ".dprnn.mindir.lock",
     lambda i: {"dprnn.mindir"}, None),
    ("preprocess_310.py", ["--data_dir", "{data}", "--infer_dir", "{out}", *TINY], LOCK,
     lambda i: {"input", "references", "manifest.json"},
     lambda out, i: sorted(os.listdir(out / "input")) == sorted(os.listdir(i["infer"] / "input"))),
    ("postprocess.py", ["--infer_dir", "{infer}", "--results_dir", "{out}", *TINY], LOCK, lambda i: RESULTS,
     lambda out, i: scores_agree(out)),
]


def start(argv, cwd, name):
    with open(cwd / f"{name}.out", "w") as out, open(cwd / f"{name}.err", "w") as err:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)


def output(process, cwd, name):
    return (cwd / f"{name}.out").read_text(), (cwd / f"{name}.err").read_text()


def holder_of(lock, processes, timeout=300):
    """The one of `processes` (by pid) whose pid the lock file names: the one holding the folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(lock.read_text().split("\n")[0])
        except (FileNotFoundError, ValueError):
            pid = None
        if pid in processes:
            return processes[pid]
        if all(p.poll() is not None for p in processes.values()):
            pytest.fail("every run ended without holding the folder")
        time.sleep(0.01)
    pytest.fail(f"no run took {lock} in {timeout} s")


@pytest.mark.parametrize("script, argv, lock_name, names, check", CASES, ids=[c[0] for c in CASES])
def test_the_same_command_twice_one_runs_the_other_stops_in_one_line(inputs, tmp_path, script, argv, lock_name,
                                                                     names, check):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / script), *(a.format(out=out, **inputs) for a in argv)]
    lock = out / lock_name
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    killed = start(command, cwd, "killed")
    holder_of(lock, {killed.pid: killed})
    killed.kill()
    killed.wait()
    assert lock.is_file()  # left by the killed run, its lock released by the operating system

    first = start(command, cwd, "first")
    time.sleep(0.5)
    second = start(command, cwd, "second")
    runs = {first.pid: first, second.pid: second}
    winner = holder_of(lock, runs)
    loser = second if winner is first else first
    os.kill(winner.pid, signal.SIGSTOP)
    try:
        frozen = tree(out)
        loser.wait(timeout=300)
        assert tree(out) == frozen  # the refused run changed nothing
    finally:
        os.kill(winner.pid, signal.SIGCONT)
    winner.wait(timeout=600)
    names_of = {first: "first", second: "second"}
    won, lost = output(winner, cwd, names_of[winner]), output(loser, cwd, names_of[loser])
    assert winner.returncode == 0, won[1][-3000:]
    shown = out / "dprnn.mindir" if script == "export.py" else out
    option = {"train.py": "--output_dir", "evaluate.py": "--results_dir", "postprocess.py": "--results_dir",
              "export.py": "--file_name", "preprocess_310.py": "--infer_dir"}.get(script, "--out_dir")
    way_out = fileio.way_out(option)
    expected = (f"error: {shown}: another run is writing into it (pid {winner.pid}: "
                f"{shlex.join(['python', *command[1:]])}); {way_out}")
    assert loser.returncode == 1 and "Traceback" not in lost[1], lost[1][-3000:]
    assert [line for line in lost[1].splitlines() if line.startswith("error")] == [expected]
    assert lost[1].rstrip("\n").endswith(expected)
    if script == "train.py":
        assert "--resume auto" in way_out

    assert {p.name for p in out.iterdir()} == names(inputs)
    assert not leftovers(out)
    if check:
        assert check(out, inputs) is not False
