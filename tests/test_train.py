"""train.py: schedules, learning, resume after SIGKILL, data-parallel equivalence, bad input."""
import csv
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from checkpoint import build_network, checkpoint_settings, load_checkpoint, load_weights, network_from_checkpoint
from config import UserError, load_config
from data import eval_dataset, mindrecord_file, read_index, read_split, train_dataset
from device import eager_mode
from evaluation import score_utterances, separate_utterances
from fileio import LOCK
from helpers import TINY_TRAINING, free_port, run_in_process
from network_define import DPRNNWithLoss, ValidationNetwork, mean_si_snr
from train_wrapper import TrainOneStep
from trainer import TrainState, build_validation, end_epoch, learning_rate, train, validation_in_one_graph

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_TRAINING


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two training mixtures, one validation, one test: (librimix root, data_dir)."""
    from librimix import preprocess
    from demo_data import make_librimix
    work = tmp_path_factory.mktemp("tiny")
    root = make_librimix(work / "librimix", counts=(2, 1, 1), seed=3, speakers_per_split=(4, 2, 2))
    preprocess(root, work / "data", load_config(["--shard_num", "1"], verbose=False))
    return root, work / "data"


def run_config(data_dir, out_dir, *argv):
    return load_config(["--data_dir", str(data_dir), "--output_dir", str(out_dir), "--device_target", "CPU",
                        *argv], verbose=False)


@pytest.mark.parametrize("epoch, factor", [(0, 1), (14, 1), (15, 0.5), (44, 0.5), (45, 0.25), (74, 0.25),
                                           (75, 0.125), (99, 0.125)])
def test_piecewise_is_the_model_zoo_schedule(epoch, factor):
    cfg = load_config(["--lr", "0.002"], verbose=False)
    assert learning_rate(cfg, TrainState(epoch=epoch)) == pytest.approx(0.002 * factor)


@pytest.mark.parametrize("epoch", [0, 1, 2, 3, 10, 57])
def test_exponential_is_098_every_two_epochs(epoch):
    cfg = load_config(["--lr_schedule", "exponential"], verbose=False)
    assert learning_rate(cfg, TrainState(epoch=epoch)) == pytest.approx(1e-3 * 0.98 ** (epoch // 2))


@pytest.mark.parametrize("epochs, rates", [(5, [1.0, 0.9045085, 0.6545085, 0.3454915, 0.0954915]),
                                           (2, [1.0, 0.5])])
def test_cosine_anneals_from_lr_over_the_epochs_and_constant_stays(epochs, rates):
    cfg = load_config(["--lr_schedule", "cosine", "--epochs", str(epochs), "--lr", "0.002"], verbose=False)
    assert [learning_rate(cfg, TrainState(epoch=e)) for e in range(epochs)] == pytest.approx([0.002 * r for r in rates])
    cfg = load_config(["--lr_schedule", "constant", "--lr", "0.002"], verbose=False)
    assert {learning_rate(cfg, TrainState(epoch=e)) for e in (0, 15, 99)} == {0.002}


def test_plateau_halves_after_patience_and_early_stop_follows_best():
    cfg = load_config(["--lr_schedule", "plateau", "--lr_patience", "2", "--early_stop_patience", "5"],
                      verbose=False)
    state = TrainState(lr=cfg.lr)
    scores = [1.0, 2.0, 1.5, 1.9, 1.8, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0]
    rates, stops = [], []
    for score in scores:
        rates.append(learning_rate(cfg, state))
        stops.append(end_epoch(cfg, state, score))
    # no improvement after epochs 3-4 (halve after the 2nd), best again at 6, then 2 and 4 bad epochs
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4])
    assert stops == [False] * 10 + [True]
    assert state.best_valid == 2.5 and state.epoch == 11


def test_a_short_run_overfits_a_few_mixtures_by_10_db(tiny_data, tmp_path):
    _, data_dir = tiny_data
    cfg = run_config(data_dir, tmp_path, "--in_channels", "64", "--hidden_channels", "64",
                     "--bn_channels", "64", "--num_layers", "2", "--K", "50", "--kernel_size", "16",
                     "--segment", "1", "--batch_size", "4", "--lr", "0.003", "--epochs", "4",
                     "--save_checkpoint_steps", "0")
    train_utterances = eval_dataset(mindrecord_file(data_dir, cfg.train_name), 2)
    ms.set_seed(cfg.seed)
    before = mean_si_snr(ValidationNetwork(build_network(cfg.group("model")), 2, False), train_utterances)
    state = train(cfg)
    trained = build_network(cfg.group("model"))
    final = sorted(tmp_path.glob("dprnn-e*.ckpt"))[-1]
    load_weights(trained, final)
    after = mean_si_snr(ValidationNetwork(trained, 2, True), train_utterances)
    assert after > before + 10, (before, after)
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    assert log[0] == "epoch,train_si_snr,valid_si_snr,lr,steps,skipped_steps,step_seconds,valid_seconds,seconds"
    assert len(log) == 1 + state.epoch and (tmp_path / "train_curves.png").stat().st_size > 1000
    assert (tmp_path / "best.ckpt").is_file() and "num_layers: 2" in (tmp_path / "config.yaml").read_text()


def test_compiled_validation_scores_as_eager_validation_does(tiny_data):
    """One graph for every length (train.compiled_validation) gives the eager scores, utterance by
    utterance, over utterances of different lengths, and again on a second pass (no recompile)."""
    _, data_dir = tiny_data
    cfg = run_config(data_dir, "unused", *TINY)
    utterances = eval_dataset(mindrecord_file(data_dir, cfg.train_name), 2)
    assert len({int(b["lens"][0]) for b in utterances.create_dict_iterator(num_epochs=1)}) == 2
    ms.set_context(mode=ms.GRAPH_MODE)
    net = build_network(cfg.group("model"))
    eager, compiled = ValidationNetwork(net, 2, False), ValidationNetwork(net, 2, True)
    batches = list(utterances.create_dict_iterator(num_epochs=1, output_numpy=True))
    with eager_mode():
        expected = [eager.scores(ms.Tensor(b["mixture"]), b["sources"], b["lens"])[0] for b in batches]
    for _ in range(2):
        got = [compiled.scores(ms.Tensor(b["mixture"]), b["sources"], b["lens"])[0] for b in batches]
        np.testing.assert_allclose(got, expected, atol=1e-3)
    assert mean_si_snr(compiled, utterances) == pytest.approx(np.mean(expected), abs=1e-3)


@pytest.mark.parametrize("target", ["Ascend", "GPU"])
def test_compiled_validation_stays_on_cpu_where_it_was_measured(target, capsys):
    assert validation_in_one_graph(True, "CPU") is True and validation_in_one_graph(False, target) is False
    assert capsys.readouterr().out == ""
    assert validation_in_one_graph(True, target) is False
    assert capsys.readouterr().out == (f"compiled_validation: measured on CPU only, so validation runs eagerly "
                                       f"on {target}\n")


class ShapeRecorder(nn.Cell):
    """The network, recording the shape of every input it is given (in PyNative mode)."""

    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net
        self.shapes = []

    def construct(self, mixture):
        self.shapes.append(tuple(mixture.shape))
        return self.net(mixture)


def test_validation_on_ascend_and_gpu_feeds_the_network_one_shape(tiny_data, capsys):
    """valid_protocol auto on Ascend (as on GPU), where every new input shape builds new kernels: one
    validation pass over utterances of different lengths feeds the network one shape, [1, segment],
    says so, and scores what evaluate.py's pieces protocol scores; on CPU it stays whole utterances."""
    librimix, data_dir = tiny_data
    cfg = run_config(data_dir, "unused", *TINY, "--segment", "0.5")
    path = mindrecord_file(data_dir, cfg.train_name)
    lengths = sorted(int(n) for n in read_index(path)[0])
    piece_len = cfg.samples("segment")
    assert len(set(lengths)) == 2 and lengths[0] > 2 * piece_len and all(n % piece_len for n in lengths)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(5)
    recorder = ShapeRecorder(build_network(cfg.group("model")))
    validation = build_validation(cfg, recorder, "Ascend", path)
    assert capsys.readouterr().out == (f"validation: SI-SNR of whole utterances (up to cv_maxlen, 8 s), separated "
                                       f"in 0.5-s pieces put back together: one input shape, [1, {piece_len}]\n")
    mean = mean_si_snr(validation, eval_dataset(path, 2))
    assert set(recorder.shapes) == {(1, piece_len)}
    assert len(recorder.shapes) == sum(-(-n // piece_len) for n in lengths)

    def separate(piece):
        return recorder.net(ms.Tensor(piece[None])).asnumpy()[0]
    items = separate_utterances(read_split(path, 2), separate, "pieces", piece_len)
    rows = score_utterances(items, False, 1, cfg.sample_rate)
    assert mean == pytest.approx(np.mean([row["SI-SNR"] for row in rows]), abs=1e-4)

    whole = build_validation(cfg, recorder, "CPU", path)
    assert isinstance(whole, ValidationNetwork) and capsys.readouterr().out.endswith("eagerly: 2 input shapes\n")
    build_validation(cfg.updated(valid_protocol="whole"), recorder, "Ascend", path)
    assert capsys.readouterr().out.endswith("2 input shapes, each compiled on Ascend (valid_protocol pieces: one)\n")


def train_command(data_dir, out_dir, *argv):
    return [sys.executable, str(ROOT / "train.py"), "--data_dir", str(data_dir), "--output_dir", str(out_dir),
            "--device_target", "CPU", *TINY, *argv]


def checkpoint_arrays(path):
    return {k: v.asnumpy() for k, v in load_checkpoint(path).items() if hasattr(v, "asnumpy")}


def kill_after_checkpoint(command, run_dir, step, env):
    """Start a training run and SIGKILL it as soon as it has written a checkpoint of >= step steps."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not any(
            int(p.name[-13:-5]) >= step for p in run_dir.glob("dprnn-e*-s*.ckpt")):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"


def log_rows(run_dir):
    """train_log.csv without the timings."""
    with open(run_dir / "train_log.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in csv.DictReader(f)]


def test_killed_and_resumed_equals_uninterrupted(tiny_data, tmp_path):
    """Killed twice (mid-epoch and later) and resumed each time, a run ends with bit for bit the
    weights, Adam moments, training state and log of the uninterrupted run, each epoch logged whole.
    The runs after the first compile no fused kernel again: the kernel cache serves them all."""
    _, data_dir = tiny_data
    argv = ["--max_steps", "40", "--save_checkpoint_steps", "4"]
    env = dict(os.environ)
    subprocess.run(train_command(data_dir, tmp_path / "straight", *argv), check=True, env=env,
                   capture_output=True)
    kernels = Path(os.environ["MS_COMPILER_CACHE_PATH"]) / "akg_kernel_meta"
    compiled = sorted(kernels.iterdir())
    steps_per_epoch = int(log_rows(tmp_path / "straight")[0]["steps"])
    assert steps_per_epoch % 4  # so the kills (after steps 4 and >= epoch + 4) are mid-epoch

    killed_dir = tmp_path / "killed"
    kill_after_checkpoint(train_command(data_dir, killed_dir, *argv), killed_dir, 4, env)
    kill_after_checkpoint(train_command(data_dir, killed_dir, *argv, "--resume", "auto"), killed_dir,
                          steps_per_epoch + 4, env)
    resumed = subprocess.run(train_command(data_dir, killed_dir, *argv, "--resume", "auto"), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    assert sorted(kernels.iterdir()) == compiled
    straight = checkpoint_arrays(sorted((tmp_path / "straight").glob("dprnn-e*-s00000040.ckpt"))[0])
    again = checkpoint_arrays(sorted(killed_dir.glob("dprnn-e*-s00000040.ckpt"))[0])
    assert straight.keys() == again.keys()
    for name in set(straight) - {"epoch_seconds"}:
        np.testing.assert_array_equal(again[name], straight[name], err_msg=name)
    assert log_rows(killed_dir) == log_rows(tmp_path / "straight")


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoints(tiny_data, tmp_path):
    """A checkpoint that cannot be written (file-size limit standing in for a full disk) is one
    line and exit 1, leaves no partial file and the earlier checkpoints as they were; a torn newest
    checkpoint is passed over by --resume auto with a warning."""
    _, data_dir = tiny_data
    run_dir = tmp_path / "run"
    argv = ["--max_steps", "4", "--save_checkpoint_steps", "2"]
    subprocess.run(train_command(data_dir, run_dir, *argv), check=True, capture_output=True)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "config.yaml"}

    def small_file_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    # (kernel fusion compiles into files: off, so that only the checkpoint meets the limit)
    full = subprocess.run(train_command(data_dir, run_dir, "--max_steps", "6", "--save_checkpoint_steps", "2",
                                        "--resume", "auto", "--kernel_fusion", "false"),
                          capture_output=True, text=True,
                          preexec_fn=small_file_limit)
    assert full.returncode == 1
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "dprnn-e" in last and "cannot write it" in last, full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != "config.yaml"} == before

    newest = sorted(run_dir.glob("dprnn-e*-s*.ckpt"))[-1]
    newest.write_bytes(newest.read_bytes()[:len(newest.read_bytes()) // 2])
    resumed = subprocess.run(train_command(data_dir, run_dir, "--max_steps", "6", "--resume", "auto"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"warning: {newest}" in resumed.stderr
    assert "resumed from" in resumed.stdout and "s00000002.ckpt" in resumed.stdout


def final_fingerprints(log_dir):
    """The weight fingerprints the workers' logs end with, one per worker log."""
    return [line.split()[4] for log in sorted(Path(log_dir).glob("worker_*.log"))
            for line in log.read_text().splitlines() if "final weights" in line]


def test_two_data_parallel_workers_equal_one_process_on_both_shards(tiny_data, tmp_path):
    """msrun on one node (the rank-table form with "none"), and the same two workers as two msrun
    nodes on 127.0.0.1 with one worker each, train alike, and as one process on both shards does."""
    _, data_dir = tiny_data
    steps = 3
    options = ["--output_dir", str(tmp_path / "out"), "--device_target", "CPU", "--max_steps", str(steps), *TINY]
    script = str(ROOT / "scripts" / "run_distribute_train.sh")
    env = dict(os.environ, PYTHON=sys.executable, LOG_DIR=str(tmp_path / "logs"), MASTER_PORT=str(free_port()))
    command = ["bash", script, "2", "true", "none", str(data_dir), *options]
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = tmp_path / "out" / LOCK
    while not (lock.is_file() and lock.read_text().startswith(f"{job.pid}\n")):  # the launcher holds the folder
        assert job.poll() is None, job.stdout.read()[-3000:]
        time.sleep(0.05)
    # the same job again meanwhile (another msrun port): one line, and not one line of it in the log
    again = subprocess.run(command, env=dict(env, MASTER_PORT=str(free_port())), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.endswith(f"another run is writing into it (pid {job.pid}: {shlex.join(command)}); wait for "
                                 f"it to end (then --resume auto continues it), or choose another --output_dir\n")
    assert job.wait(timeout=600) == 0, job.stdout.read()[-3000:]
    fingerprints = final_fingerprints(tmp_path / "logs")
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    log = (tmp_path / "out" / "train.log").read_text()
    assert "--worker_num=2" in log and log.count("\n=== ") + log.startswith("=== ") == 1  # the launcher's own log
    assert not lock.exists()

    # node 1 as if on another machine: msrun starts a scheduler wherever the master address is one
    # of the host's own, so on one host both nodes would start one and the second could not bind
    (tmp_path / "other_machine").mkdir()
    (tmp_path / "other_machine" / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.pop('AS_IF_ON_ANOTHER_MACHINE', ''):\n"
        "    from mindspore.parallel.cluster.process_entity import _api\n"
        "    _api._is_local_ip = lambda address: False\n")
    node_env = [dict(env, LOG_DIR=str(tmp_path / "logs_node0")),
                dict(env, LOG_DIR=str(tmp_path / "logs_node1"), AS_IF_ON_ANOTHER_MACHINE="1",
                     PYTHONPATH=os.pathsep.join([str(tmp_path / "other_machine"), os.environ.get("PYTHONPATH", "")]))]
    port = free_port()
    nodes = [subprocess.Popen(["bash", script, "2", "1", "127.0.0.1", str(port), str(rank), str(data_dir),
                               *options[:1], str(tmp_path / f"out_node{rank}"), *options[2:]],
                              env=node_env[rank], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert not (tmp_path / "logs_node1" / "scheduler.log").exists()
    node_fingerprints = [f for rank in (0, 1) for f in final_fingerprints(tmp_path / f"logs_node{rank}")]
    assert node_fingerprints == fingerprints

    cfg = run_config(data_dir, tmp_path, *TINY)
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(cfg.seed)
    net = build_network(cfg.group("model"))
    step = TrainOneStep(DPRNNWithLoss(net, 2), nn.Adam(net.trainable_params(), cfg.lr, weight_decay=cfg.l2),
                        cfg.clip_norm)
    path = mindrecord_file(data_dir, cfg.train_name)
    shards = [train_dataset(path, cfg, 0, 2, r)[0].create_tuple_iterator(num_epochs=1) for r in (0, 1)]
    for _, (first, second) in zip(range(steps), zip(*shards)):
        step(*[ops.concat([a, b]) for a, b in zip(first, second)])
    saved = load_checkpoint(sorted((tmp_path / "out").glob("dprnn-e*-s*.ckpt"))[-1])
    # one Adam step moves a weight by about lr (1e-3): 3e-5 is float noise (Adam divides by the
    # root of tiny second moments, so summation order shows), not a missed or doubled update
    for param in net.trainable_params():
        np.testing.assert_allclose(saved[param.name].asnumpy(), param.asnumpy(), rtol=0, atol=3e-5,
                                   err_msg=param.name)


def test_scripts_need_only_the_checkpoint_of_a_trained_model(tiny_data, tmp_path):
    """train.py records the model settings in its checkpoints: evaluate, export and separate work
    from --ckpt_path alone and give what the explicit settings give; a model setting that disagrees
    with the checkpoint's is a one-line error. (Through the scripts' main() and run_main(), as their
    command lines run them; each script's command line as a process is tested in its own files.)"""
    librimix, data_dir = tiny_data
    run_dir = tmp_path / "run"
    train(run_config(data_dir, run_dir, *TINY, "--epochs", "1", "--sample_rate", "8000"))
    ckpt = str(run_dir / "best.ckpt")

    def script(name, *argv):
        """The script's exit status and its error line (None when it succeeded)."""
        try:
            run_in_process(name, "--ckpt_path", ckpt, "--device_target", "CPU", *argv)
        except SystemExit as stopped:
            return 1, stopped.code
        return 0, None

    alone = script("evaluate.py", "--data_dir", str(data_dir), "--results_dir", str(tmp_path / "alone"))
    explicit = script("evaluate.py", *TINY, "--data_dir", str(data_dir), "--results_dir", str(tmp_path / "explicit"))
    assert alone == explicit == (0, None)
    assert (tmp_path / "alone" / "summary.json").read_text() == (tmp_path / "explicit" / "summary.json").read_text()
    assert script("export.py", "--file_name", str(tmp_path / "tiny")) == (0, None)
    mixture = next((librimix / "test" / "mix_clean").glob("*.wav"))
    assert script("separate.py", str(mixture), "--out_dir", str(tmp_path / "separated")) == (0, None)
    assert len(list((tmp_path / "separated").glob("*.wav"))) == 2
    assert script("evaluate.py", "--num_layers", "2", "--data_dir", str(data_dir)) == (
        1, f"error: {ckpt} was trained with num_layers 1, not 2: leave num_layers out (the checkpoint knows its "
           f"settings)")


def test_a_checkpoint_without_settings_is_built_as_the_config_says(tmp_path):
    """The model zoo's checkpoints carry no model_args: the config (--config_path or flags) gives
    them. Settings a checkpoint has that this version has not are one line."""
    cfg = load_config(TINY, verbose=False)
    ms.set_seed(5)
    net = build_network(cfg.group("model"))
    path = tmp_path / "zoo.ckpt"
    ms.save_checkpoint(net, str(path))
    given = load_config(TINY + ["--ckpt_path", str(path)], verbose=False)
    loaded, settings = network_from_checkpoint(given.ckpt_path, checkpoint_settings(given), given.explicit)
    assert settings == checkpoint_settings(cfg)
    for param, twin in zip(net.trainable_params(), loaded.trainable_params()):
        np.testing.assert_array_equal(param.asnumpy(), twin.asnumpy())
    unknown = {**checkpoint_settings(cfg), "out_channels": cfg.in_channels}
    ms.save_checkpoint(net, str(tmp_path / "other.ckpt"), append_dict={"model_args": json.dumps(unknown)})
    with pytest.raises(UserError, match="its model_args hold settings this version has not: out_channels"):
        network_from_checkpoint(str(tmp_path / "other.ckpt"), checkpoint_settings(cfg))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no MindRecord file here; run `python preprocess.py"):
        train(run_config(tmp_path / "nothing", tmp_path / "out"))


def test_checkpoint_of_another_model_is_a_clear_error(tiny_data, tmp_path):
    _, data_dir = tiny_data
    ckpt = tmp_path / "other.ckpt"
    ms.save_checkpoint(build_network(run_config(data_dir, tmp_path, *TINY).group("model")), str(ckpt))
    wider = run_config(data_dir, tmp_path, *TINY, "--bn_channels", "24")
    with pytest.raises(UserError, match="does not fit the configured model: .* is \\(.*\\) there but"):
        load_weights(build_network(wider.group("model")), ckpt)
    with pytest.raises(UserError, match="holds weights only"):
        train(run_config(data_dir, tmp_path / "out", *TINY, "--resume", str(ckpt)))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.ckpt: not a readable MindSpore checkpoint"):
        load_weights(build_network(wider.group("model")), tmp_path / "junk.ckpt")


def test_unavailable_device_is_one_line_and_exit_1(tiny_data, tmp_path):
    _, data_dir = tiny_data
    command = train_command(data_dir, tmp_path)
    command[command.index("CPU")] = "Ascend"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: device_target Ascend was asked for")
