"""MindDataset pipelines over preprocess.py's MindRecord files (whole utterances, 16-bit PCM).

Columns, as the model zoo names them: mixture [B, T] float32, lens [B] int32, sources [B, C, T]
float32; evaluation batches also carry mixture_ID [B].

Training reads fixed-length segments. Each epoch's segments are planned up front from the
utterance lengths (`plan_epoch`): which utterance, which start, in which order, on which shard. The
plan is a pure function of (seed, epoch), so runs are reproducible, a resumed run sees the same
batches, and data-parallel ranks get disjoint shards of equal size.
"""
from pathlib import Path

import mindspore.dataset as ds
import numpy as np

from errors import UserError

RECORD_COLUMNS = ["mixture", "sources", "length", "mixture_ID"]
COLUMNS = ["mixture", "lens", "sources"]
PCM_SCALE = 1 / 32768


def segment_starts(length, segment_len, hop):
    """Starts of the segment_len-long segments of an utterance of `length` samples, every `hop`
    samples, plus the last segment_len samples whenever length is not a multiple of segment_len
    (even if a hop already ends there, as the model zoo's generator does); none if it is shorter.
    The zoo scores segments a whole segment apart and trains on segments half a segment apart."""
    starts = list(range(0, length - segment_len + 1, hop))
    if starts and length % segment_len:
        starts.append(length - segment_len)
    return starts


def mindrecord_file(data_dir, name):
    """The file MindDataset opens for a split written as `name` (one file, or the first of shards)."""
    for candidate in (Path(data_dir) / name, Path(data_dir) / f"{name}0"):
        if candidate.is_file():
            return str(candidate)
    raise UserError(f"{Path(data_dir) / name}: no MindRecord file here; run "
                    f"`python preprocess.py --in_dir LIBRIMIX --out_dir {data_dir}` first")


def _unreadable(path, err):
    detail = next((line.strip() for line in str(err).splitlines()
                   if line.strip() and not set(line.strip()) <= set("-") and "Exception thrown" not in line
                   and "Pipeline Error" not in line), "unknown error")
    return UserError(f"{path}: not a readable MindRecord file ({detail[:200]}): rerun preprocess.py")


def read_index(path):
    """Lengths (samples) and mixture IDs of every utterance, in the file's record order.

    Reading every record's small columns once also proves the files whole: a truncated or foreign
    file is a UserError here rather than a traceback in the middle of training."""
    try:
        records = ds.MindDataset(path, columns_list=["length", "mixture_ID"], shuffle=False)
        rows = list(records.create_tuple_iterator(output_numpy=True, num_epochs=1))
    except RuntimeError as err:
        raise _unreadable(path, err) from None
    if not rows:
        raise UserError(f"{path}: holds no utterances: rerun preprocess.py on a split that has some")
    return np.array([int(length) for length, _ in rows], np.int64), [str(i) for _, i in rows]


def check_num_spks(path, num_spks):
    """UserError unless the file's utterances have num_spks sources (or the file is unreadable)."""
    read_index(path)
    first = ds.MindDataset(path, columns_list=["sources", "length"], shuffle=False).take(1)
    for sources, length in first.create_tuple_iterator(output_numpy=True, num_epochs=1):
        found = sources.nbytes // 2 // int(length)
        if found != num_spks:
            raise UserError(f"{path} holds {found}-speaker mixtures but num_spks is {num_spks}: "
                            f"pass --num_spks {found} or preprocess the matching LibriMix")


def plan_epoch(lengths, segment_len, mode, seed, epoch, num_shards=1, shard_id=0):
    """This shard's (record index, start) pairs for one epoch, in training order.

    mode "fixed": every segment of every utterance, half a segment apart (segment_starts);
    "random": one crop per utterance, drawn from a generator seeded by (seed, epoch, record). The
    segments are shuffled by (seed, epoch), then dealt to shards; the list is padded by wrapping
    around so every shard gets the same number (so data-parallel ranks take the same number of steps).
    """
    if mode == "fixed":
        plan = [(i, s) for i, n in enumerate(lengths) for s in segment_starts(int(n), segment_len, segment_len // 2)]
    else:
        plan = [(i, int(np.random.default_rng([seed, epoch, i]).integers(0, n - segment_len + 1)))
                for i, n in enumerate(lengths) if n >= segment_len]
    if not plan:
        return []
    order = list(np.random.default_rng([seed, epoch]).permutation(len(plan)))
    per_shard = -(-len(order) // num_shards)
    order += order[:per_shard * num_shards - len(order)]
    return [plan[j] for j in order[shard_id::num_shards]]


def decode(mixture, sources, length):
    """Record bytes -> float32 mixture [T] and sources [C, T]."""
    mixture = np.frombuffer(mixture, "<i2").astype(np.float32) * PCM_SCALE
    sources = np.frombuffer(sources, "<i2").astype(np.float32).reshape(-1, int(length)) * PCM_SCALE
    return mixture, sources


def train_dataset(path, cfg, epoch, num_shards=1, shard_id=0):
    """Batches of training segments for one epoch (drop_remainder) and the epoch's summary.

    Returns (dataset, info) where info has num_segments (this shard), dropped_utterances (shorter
    than a segment) and utterances.
    """
    check_num_spks(path, cfg.num_spks)
    lengths, _ = read_index(path)
    segment_len = cfg.samples("segment")
    plan = plan_epoch(lengths, segment_len, cfg.segment_mode, cfg.seed, epoch, num_shards, shard_id)
    info = {"utterances": len(lengths), "num_segments": len(plan),
            "dropped_utterances": int((lengths < segment_len).sum())}
    if len(plan) < cfg.batch_size:
        raise UserError(f"{path}: {len(plan)} training segments of {cfg.segment} s on this shard, "
                        f"fewer than batch_size {cfg.batch_size} ({info['dropped_utterances']} of "
                        f"{len(lengths)} utterances are shorter than a segment): lower --segment "
                        f"or --batch_size")
    indices = [i for i, _ in plan]
    # A MindDataset sampler takes at most as many indices as the file has records, while the plan
    # visits records several times (one per segment): read it in passes of that size.
    passes = [ds.MindDataset(path, columns_list=RECORD_COLUMNS[:3],
                             sampler=ds.SubsetSampler(indices[k:k + len(lengths)]),
                             num_parallel_workers=cfg.num_workers)
              for k in range(0, len(indices), len(lengths))]
    records = passes[0].concat(passes[1:]) if len(passes) > 1 else passes[0]
    starts = ds.NumpySlicesDataset({"start": np.array([s for _, s in plan], np.int64)}, shuffle=False)

    def cut(mixture, sources, length, start):
        mixture, sources = decode(mixture, sources, length)
        end = start + segment_len
        return mixture[start:end], np.int32(segment_len), sources[:, start:end]

    segments = ds.zip((records, starts)).map(
        cut, input_columns=["mixture", "sources", "length", "start"], output_columns=COLUMNS,
        num_parallel_workers=cfg.num_workers)
    batches = segments.project(COLUMNS).batch(cfg.batch_size, drop_remainder=True)
    if cfg.dynamic_mixing:
        batches = batches.map(remix, input_columns=COLUMNS, output_columns=COLUMNS)
    return batches, info


def remix(mixture, lens, sources):
    """Dynamic mixing inside a batch of segments: speaker c of each segment is replaced by speaker c
    of the segment c places before it (cyclically), and the mixture rebuilt as the sum of the new
    sources plus whatever the old mixture held beyond its own (the noise of mix_both, PCM rounding).
    The segments are shuffled anew every epoch, so every epoch trains on mixtures never seen before.

    mixture [B, T], lens [B], sources [B, C, T] -> the same; needs B >= C (config checks it).
    """
    residual = mixture - sources.sum(axis=1)
    remixed = np.stack([np.roll(sources[:, c], c, axis=0) for c in range(sources.shape[1])], axis=1)
    return remixed.sum(axis=1) + residual, lens, remixed


def eval_dataset(path, num_spks, max_samples=0, batch_size=1, num_workers=1):
    """Whole utterances in file order (cut to max_samples if > 0); batches zero-padded to their
    longest utterance, with true lengths in `lens`. Columns: mixture, lens, sources, mixture_ID."""
    check_num_spks(path, num_spks)

    def whole(mixture, sources, length):
        mixture, sources = decode(mixture, sources, length)
        if max_samples:
            mixture, sources = mixture[:max_samples], sources[:, :max_samples]
        return mixture, np.int32(len(mixture)), sources

    utterances = ds.MindDataset(path, columns_list=RECORD_COLUMNS, shuffle=False).map(
        whole, input_columns=RECORD_COLUMNS[:3], output_columns=COLUMNS,
        num_parallel_workers=num_workers)
    utterances = utterances.project(COLUMNS + ["mixture_ID"])
    return utterances.padded_batch(batch_size, pad_info={"mixture": ([None], 0.0),
                                                         "sources": ([num_spks, None], 0.0)})


def read_split(path, num_spks):
    """(mixture_ID, mixture [T], sources [C, T]) of every utterance of a split, in file order."""
    for batch in eval_dataset(path, num_spks).create_dict_iterator(num_epochs=1, output_numpy=True):
        length = int(batch["lens"][0])
        yield str(batch["mixture_ID"][0]), batch["mixture"][0, :length], batch["sources"][0, :, :length]
