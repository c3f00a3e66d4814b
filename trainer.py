"""The training loop under train.py: epochs of TrainOneStep updates, validation, checkpoints that
resume exactly, the CSV log and curves, standalone or data-parallel.

`train(cfg)` runs a whole training as train.py's docstring describes; TrainState is what a
checkpoint records of where training stands.
"""
import csv
import hashlib
import math
import re
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import mindspore as ms
import numpy as np
from tqdm import tqdm

from checkpoint import MODEL_ARGS, build_network, load_checkpoint, load_weights, model_args, save_checkpoint
from data import check_num_spks, eval_dataset, mindrecord_file, read_index, train_dataset
from device import setup_device
from errors import UserError
from evaluation import input_shapes
from fileio import atomic_path, check_output_dir, one_writer, write_text
from model import count_parameters
from network_define import PieceValidation, ValidationNetwork, mean_si_snr
from train_wrapper import build_train_step

PIECEWISE_MILESTONES = (15, 45, 75)  # the model zoo's: lr halves at each
CHECKPOINT = re.compile(r"dprnn-e(\d+)-s(\d+)\.ckpt")


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint so a resumed run continues exactly."""
    epoch: int = 0            # the epoch in progress (0-based)
    step_in_epoch: int = 0    # batches of it already taken
    total_steps: int = 0
    lr: float = 0.0           # the plateau schedule's current rate
    best_valid: float = -math.inf
    epochs_since_best: int = 0
    # the epoch in progress so far, so that a resumed epoch is logged whole
    epoch_loss: float = 0.0   # sum of the finite losses
    epoch_steps: int = 0      # steps with a finite loss and gradient
    epoch_skipped: int = 0
    epoch_seconds: float = 0.0
    history: list = field(default_factory=list)  # one dict per finished epoch (train_log.csv rows)


def learning_rate(cfg, state):
    """The learning rate of epoch `state.epoch` under cfg.lr_schedule."""
    if cfg.lr_schedule == "piecewise":
        return cfg.lr * 0.5 ** sum(state.epoch >= m for m in PIECEWISE_MILESTONES)
    if cfg.lr_schedule == "exponential":
        return cfg.lr * 0.98 ** (state.epoch // 2)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * state.epoch / cfg.epochs))
    return state.lr


def end_epoch(cfg, state, valid_si_snr):
    """Update best score, plateau rate and patience after an epoch's validation; True to stop early."""
    if valid_si_snr > state.best_valid:
        state.best_valid, state.epochs_since_best = valid_si_snr, 0
    else:
        state.epochs_since_best += 1
        if cfg.lr_schedule == "plateau" and state.epochs_since_best % cfg.lr_patience == 0:
            state.lr *= 0.5
    state.epoch += 1
    state.step_in_epoch = state.epoch_steps = state.epoch_skipped = 0
    state.epoch_loss = state.epoch_seconds = 0.0
    return 0 < cfg.early_stop_patience <= state.epochs_since_best


def init_parallel(cfg):
    """(rank, group size); initialises the collective backend for data-parallel runs."""
    if not cfg.distribute:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=get_group_size())
    return get_rank(), get_group_size()


def weights_fingerprint(net):
    """A short hash of all weights: equal across data-parallel ranks that stayed in step."""
    digest = hashlib.sha256()
    for param in net.trainable_params():
        digest.update(param.asnumpy().tobytes())
    return digest.hexdigest()[:16]


class RunDirectory:
    """The output folder: checkpoints (atomic), the CSV log and the curves plot. Rank 0 only."""

    def __init__(self, path, keep_checkpoint_max, model_args):
        self.path = Path(path)
        self.keep = keep_checkpoint_max
        self.model_args = model_args  # written into every checkpoint

    def check_no_earlier_run(self):
        """UserError when the folder holds another run's checkpoints or log: a fresh run would replace
        its best.ckpt and log and prune its checkpoints, so it must be continued or moved away."""
        found = [p.name for p in (self.path / "best.ckpt", self.path / "train_log.csv") if p.is_file()]
        if periodic := self.checkpoints():
            found.append(f"{len(periodic)} checkpoint{'s' * (len(periodic) > 1)} up to {periodic[-1].name}")
        if found:
            raise UserError(f"{self.path} holds an earlier training run ({', '.join(found)}): pass --resume auto "
                            f"to continue it, or choose another --output_dir")

    def checkpoints(self):
        """Periodic checkpoints, oldest first."""
        found = [(int(m[2]), int(m[1]), p) for p in self.path.glob("dprnn-e*-s*.ckpt")
                 if (m := CHECKPOINT.fullmatch(p.name))]
        return [p for _, _, p in sorted(found)]

    def _save(self, cell, name, state):
        # written under a temporary name and renamed: a kill never leaves a torn checkpoint behind,
        # and a full disk leaves the previous checkpoints as they were
        # floats as float64 tensors: MindSpore would store a Python float as float32, and the
        # epoch's loss sum must come back exactly for the resumed epoch's log row
        extra = {k: ms.Tensor(v, ms.float64) if isinstance(v, float) else v
                 for k, v in asdict(state).items() if k != "history"}
        extra[MODEL_ARGS] = self.model_args
        with atomic_path(self.path / name) as tmp:
            save_checkpoint(cell, tmp, extra)

    def save_state(self, train_step, state):
        self._save(train_step, f"dprnn-e{state.epoch:03d}-s{state.total_steps:08d}.ckpt", state)
        for old in self.checkpoints()[:-self.keep]:
            old.unlink()

    def save_best(self, net, state):
        self._save(net, "best.ckpt", state)

    def write_log(self, history):
        with atomic_path(self.path / "train_log.csv") as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[-1]), restval="")
            writer.writeheader()
            writer.writerows(history)
        self._plot(history)

    def _plot(self, history):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        epochs = [row["epoch"] for row in history]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(epochs, [row["train_si_snr"] for row in history], "o-", label="train")
        ax.plot(epochs, [row["valid_si_snr"] for row in history], "s-", label="valid")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("SI-SNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_path(self.path / "train_curves.png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def resume_from(cfg, run_dir):
    """(path, entries) of the checkpoint to resume from, or None to start afresh.

    `--resume auto` takes the newest periodic checkpoint that loads, warning about any newer one
    that does not (torn by a crash or a full disk outside this program's control)."""
    if cfg.resume != "auto":
        return Path(cfg.resume), load_checkpoint(cfg.resume)
    for path in reversed(run_dir.checkpoints()):
        try:
            entries = load_checkpoint(path)
        except UserError as err:
            print(f"warning: {err}; resuming from an earlier checkpoint", file=sys.stderr, flush=True)
            continue
        if "step_in_epoch" in entries:  # the training state is written last: present means whole
            return path, entries
        print(f"warning: {path} is incomplete; resuming from an earlier checkpoint", file=sys.stderr,
              flush=True)
    return None


def restore(train_step, path, entries, state):
    """Weights, Adam moments and the training state from a checkpoint written by RunDirectory."""
    if "global_step" not in entries or "step_in_epoch" not in entries:
        raise UserError(f"{path} holds weights only, not a training state to resume; start "
                        f"from it with evaluate/export, or resume from a dprnn-e*-s*.ckpt")
    load_weights(train_step.network.network, path, entries)
    ms.load_param_into_net(train_step.optimizer, entries)
    for f in fields(TrainState):
        if f.name in entries:
            value = entries[f.name].asnumpy().item()
            setattr(state, f.name, type(getattr(state, f.name))(value))


def read_history(run_dir, epochs_done):
    log = run_dir.path / "train_log.csv"
    if not log.is_file():
        return []
    with open(log, newline="") as f:
        rows = [{k: int(v) if k in ("epoch", "steps", "skipped_steps") else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]
    return [row for row in rows if row["epoch"] <= epochs_done]


def validation_in_one_graph(compiled_validation, target):
    """compiled_validation where it was measured: one dynamic-shape graph for every validation length
    was compiled and checked against eager scores on CPU only (with Ascend's DynamicRNN it has never
    run), so on another device validation runs eagerly, said in one line."""
    if compiled_validation and target != "CPU":
        print(f"compiled_validation: measured on CPU only, so validation runs eagerly on {target}", flush=True)
        return False
    return compiled_validation


def build_validation(cfg, net, target, valid_path):
    """The validation of valid_protocol (auto: whole utterances on CPU, pieces where kernels are built
    for every input shape), and one line saying what it scores and how many input shapes it feeds."""
    protocol = cfg.valid_protocol
    if protocol == "auto":
        protocol = "whole" if target == "CPU" else "pieces"
    scored = f"validation: SI-SNR of whole utterances (up to cv_maxlen, {cfg.cv_maxlen:g} s)"
    if protocol == "pieces":
        piece_len = cfg.samples("segment")
        print(f"{scored}, separated in {cfg.segment:g}-s pieces put back together: one input shape, "
              f"[1, {piece_len}]", flush=True)
        return PieceValidation(net, piece_len)
    one_graph = validation_in_one_graph(cfg.compiled_validation, target)
    shapes = input_shapes("whole", np.minimum(read_index(valid_path)[0], cfg.samples("cv_maxlen")))
    compiles = "" if target == "CPU" else f", each compiled on {target} (valid_protocol pieces: one)"
    print(f"{scored}, {'in one graph' if one_graph else 'eagerly'}: {shapes} input shapes{compiles}", flush=True)
    return ValidationNetwork(net, cfg.num_spks, one_graph)


@dataclass
class Run:
    """What a training run works with, set up by start_run; rank 0 (the chief) writes the files."""
    cfg: object
    target: str
    rank: int
    group_size: int
    train_path: Path
    valid_data: object
    net: object
    train_step: object
    validation: object  # ValidationNetwork or PieceValidation
    run_dir: RunDirectory
    state: TrainState

    @property
    def is_chief(self):
        return self.rank == 0

    def finished(self):
        cfg, state = self.cfg, self.state
        return state.epoch >= cfg.epochs or bool(cfg.max_steps and state.total_steps >= cfg.max_steps)


@dataclass
class Epoch:
    """The epoch in progress: its learning rate, when it started (a resumed epoch counts its
    earlier part), its step times, and whether all its steps ran (max_steps may stop it)."""
    lr: float
    started: float
    step_times: list = field(default_factory=list)
    complete: bool = False


def train(cfg):
    """The whole run, holding output_dir (its chief does, for every rank); returns the final TrainState."""
    check_output_dir(cfg.output_dir, "--output_dir")
    target = setup_device(**cfg.group("device"), distributed=cfg.distribute)
    rank, group_size = init_parallel(cfg)
    with one_writer(cfg.output_dir, "--output_dir") if rank == 0 else nullcontext():
        run = start_run(cfg, target, rank, group_size)
        while not run.finished():
            epoch = run_epoch(run)
            if not epoch.complete or validate_and_log(run, epoch):
                break
    print(f"rank {run.rank} final weights {weights_fingerprint(run.net)} after {run.state.total_steps} steps",
          flush=True)
    return run.state


def start_run(cfg, target, rank, group_size):
    """Check the inputs and the output folder, build the network and its training step, and resume
    from a checkpoint where asked; the chief writes config.yaml."""
    run_dir = RunDirectory(cfg.output_dir, cfg.keep_checkpoint_max, model_args(cfg))
    if not cfg.resume:
        run_dir.check_no_earlier_run()
    ms.set_seed(cfg.seed)
    train_path = mindrecord_file(cfg.data_dir, cfg.train_name)
    check_num_spks(train_path, cfg.num_spks)  # before anything is written: a bad file stops here
    valid_path = mindrecord_file(cfg.data_dir, cfg.valid_name)
    valid_data = eval_dataset(valid_path, cfg.num_spks, max_samples=cfg.samples("cv_maxlen"))
    net = build_network(cfg.group("model"))
    train_step = build_train_step(cfg, net)
    validation = build_validation(cfg, net, target, valid_path)
    run = Run(cfg, target, rank, group_size, train_path, valid_data, net, train_step, validation, run_dir,
              TrainState(lr=cfg.lr))
    if cfg.resume and (found := resume_from(cfg, run_dir)):
        path, entries = found
        restore(train_step, path, entries, run.state)
        run.state.history = read_history(run_dir, run.state.epoch)
        print(f"resumed from {path}: epoch {run.state.epoch + 1}, step {run.state.step_in_epoch} of it, "
              f"{run.state.total_steps} steps in all", flush=True)
    if run.is_chief:
        run_dir.path.mkdir(parents=True, exist_ok=True)
        write_text(run_dir.path / "config.yaml", str(cfg) + "\n")
    print(f"training on {target} ({group_size} process{'es' if group_size > 1 else ''}), "
          f"{count_parameters(net):,} parameters", flush=True)
    return run


def run_epoch(run):
    """The current epoch's remaining steps (all, or up to max_steps), with periodic checkpoints;
    stopped by max_steps inside the epoch, its state is saved."""
    cfg, state = run.cfg, run.state
    epoch = Epoch(lr=learning_rate(cfg, state), started=time.time() - state.epoch_seconds)
    run.train_step.set_learning_rate(epoch.lr)
    dataset, info = train_dataset(run.train_path, cfg, state.epoch, run.group_size, run.rank)
    steps = info["num_segments"] // cfg.batch_size
    bar = tqdm(total=steps, initial=state.step_in_epoch, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
               unit="step", disable=not run.is_chief, dynamic_ncols=True,
               mininterval=0.1 if sys.stderr.isatty() else 30)  # a log file gets a line per 30 s
    for batch in dataset.skip(state.step_in_epoch).create_tuple_iterator(num_epochs=1):
        train_one_step(run, epoch, batch, bar)
        if cfg.max_steps and state.total_steps >= cfg.max_steps:
            break
    bar.close()
    epoch.complete = state.step_in_epoch >= steps
    if not epoch.complete and run.is_chief:
        run.run_dir.save_state(run.train_step, state)
    return epoch


def train_one_step(run, epoch, batch, bar):
    """One update (a non-finite loss or gradient skips it, counted), then a checkpoint every
    save_checkpoint_steps."""
    cfg, state = run.cfg, run.state
    step_started = time.time()
    loss, grad_norm = run.train_step(*batch)
    loss, grad_norm = float(loss.asnumpy()), float(grad_norm.asnumpy())
    if math.isfinite(loss) and math.isfinite(grad_norm):
        state.epoch_loss += loss
        state.epoch_steps += 1
    else:
        state.epoch_skipped += 1
        tqdm.write(f"step {state.total_steps + 1}: non-finite loss or gradient, update skipped")
    state.step_in_epoch += 1
    state.total_steps += 1
    step_time = time.time() - step_started
    epoch.step_times.append(step_time)
    bar.set_postfix(loss=f"{loss:.3f}", si_snr=f"{-loss:.2f}", lr=f"{epoch.lr:.2e}", step_s=f"{step_time:.2f}",
                    samples_s=f"{cfg.batch_size * run.group_size / step_time:.1f}", refresh=False)
    bar.update(1)
    state.epoch_seconds = time.time() - epoch.started
    if run.is_chief and cfg.save_checkpoint_steps and state.total_steps % cfg.save_checkpoint_steps == 0:
        run.run_dir.save_state(run.train_step, state)


def validate_and_log(run, epoch):
    """After a whole epoch: validation, the best and the periodic checkpoint, the log row and line;
    True to stop early."""
    cfg, state = run.cfg, run.state
    end_started = time.time()
    valid = mean_si_snr(run.validation, run.valid_data)
    improved = valid > state.best_valid
    train_si_snr = -state.epoch_loss / max(state.epoch_steps, 1)
    epoch_steps, skipped = state.epoch_steps, state.epoch_skipped
    row = {"epoch": state.epoch + 1, "train_si_snr": round(train_si_snr, 4),
           "valid_si_snr": round(valid, 4), "lr": epoch.lr, "steps": epoch_steps,
           "skipped_steps": skipped, "step_seconds": round(statistics.median(epoch.step_times or [0]), 4)}
    stop = end_epoch(cfg, state, valid)
    if run.is_chief:
        if improved:
            run.run_dir.save_best(run.net, state)
        run.run_dir.save_state(run.train_step, state)
    row["valid_seconds"] = round(time.time() - end_started, 2)  # validation and checkpoints
    row["seconds"] = round(time.time() - epoch.started, 1)
    state.history.append(row)
    if run.is_chief:
        run.run_dir.write_log(state.history)
    print(f"epoch {state.epoch}/{cfg.epochs}: train SI-SNR {train_si_snr:.2f} dB, valid SI-SNR "
          f"{valid:.2f} dB{' (best)' if improved else ''}, lr {epoch.lr:.2e}, {epoch_steps} steps"
          f"{f', {skipped} skipped' if skipped else ''}, {row['seconds']:.0f} s", flush=True)
    if stop:
        print(f"early stop: no better validation SI-SNR for {state.epochs_since_best} epochs")
    return stop
