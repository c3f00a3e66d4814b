"""Reading LibriMix (or the model zoo's tr/cv/tt folders) and writing it as manifests and sharded
MindRecord files: the library under preprocess.py, which describes the layouts and the output.

Audio is checked file by file (readable, mono, one rate, matching lengths); a bad file is a
UserError naming it, or with skip_bad a dropped utterance. Everything is built in a temporary
folder inside out_dir and moved into place only when complete.
"""
import csv
import io
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from errors import UserError, reason_of
from fileio import check_output_dir, made_folders, one_writer, process_alive

import librosa
import numpy as np
import soundfile as sf
from mindspore.mindrecord import FileWriter
from tqdm import tqdm

ROLES = ("tr", "cv", "tt")  # train / valid / test, as the model zoo names them
SCHEMA = {"mixture": {"type": "bytes"}, "sources": {"type": "bytes"},
          "length": {"type": "int64"}, "mixture_ID": {"type": "string"}}
WRITE_CHUNK = 128  # utterances read and written at a time: bounds memory on large splits


class AudioError(Exception):
    """An input file that cannot be used; its message names the file and the fix."""


@dataclass
class Utterance:
    mixture_id: str
    mixture_path: Path
    source_paths: list
    listed_in: str = ""  # where the paths come from (a metadata CSV's row), for the errors that name them


def find_layout(in_dir, sample_rate):
    """('librimix' | 'zoo', root folder) for a user-given input folder."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise UserError(f"--in_dir {in_dir}: no such folder")
    for root in (in_dir, in_dir / f"wav{sample_rate // 1000}k" / "min"):
        if list(root.glob("metadata/mixture_*.csv")):
            return "librimix", root
    if any((in_dir / role / "mix").is_dir() for role in ROLES):
        return "zoo", in_dir
    raise UserError(f"{in_dir} is neither a LibriMix folder (metadata/mixture_*.csv, e.g. "
                    f"Libri2Mix/wav8k/min) nor a model-zoo folder (tr/, cv/, tt/ with mix/, s1/, s2/)")


def _local_path(listed, root):
    """A CSV path as it is, or re-rooted under `root` when it points to another machine's disk."""
    path = Path(listed)
    if path.exists():
        return path
    rerooted = root.joinpath(*path.parts[-3:])  # {split}/{mix_clean|s1|...}/{file}.wav
    return rerooted if rerooted.exists() else path


def read_metadata(csv_path):
    """(header, [(row number, cells)]) of a LibriMix metadata CSV, the header being row 1; a UserError
    naming the CSV and the row for a byte that is not UTF-8."""
    data = csv_path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        row = data[:err.start].count(b"\n") + 1
        raise UserError(f"{csv_path}, row {row}: byte 0x{data[err.start]:02x} is not UTF-8: save the CSV as "
                        f"UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = [(reader.line_num, cells) for cells in reader if cells]
    return header, rows


def librimix_utterances(root, splits, mix_type, num_spks):
    """Utterances listed in metadata/mixture_{split}_{mix_type}.csv for each comma-separated split;
    a problem in a CSV is a UserError naming the CSV, the row and the column."""
    utterances = []
    for split in splits.split(","):
        csv_path = root / "metadata" / f"mixture_{split.strip()}_{mix_type}.csv"
        if not csv_path.is_file():
            found = sorted(p.name for p in (root / "metadata").glob("mixture_*.csv"))
            raise UserError(f"{csv_path}: no such file (metadata has {', '.join(found)}); "
                            f"choose splits with --train_split/--valid_split/--test_split")
        header, rows = read_metadata(csv_path)
        source_columns = sorted((c for c in header if re.fullmatch(r"source_\d+_path", c)),
                                key=lambda c: int(c.split("_")[1]))
        missing = [c for c in ("mixture_ID", "mixture_path") if c not in header]
        if not rows or missing or not source_columns:
            raise UserError(f"{csv_path}: expected LibriMix columns mixture_ID, mixture_path, "
                            f"source_1_path, ... and at least one row"
                            + (f" (row 1, the header, has no {', '.join(missing)} column)" if rows and missing else ""))
        if len(source_columns) != num_spks:
            raise UserError(f"{csv_path} lists {len(source_columns)} sources per mixture but num_spks is "
                            f"{num_spks}: pass --num_spks {len(source_columns)} or use the Libri"
                            f"{num_spks}Mix metadata")
        first_row_of = {}
        for number, cells in rows:
            where = f"{csv_path}, row {number}"
            if len(cells) < len(header):
                raise UserError(f"{where}: {len(cells)} cells, but the header has {len(header)} columns: "
                                f"complete the row or remove it")
            row = dict(zip(header, cells))
            for column in ("mixture_ID", "mixture_path", *source_columns):
                if not row[column].strip():
                    raise UserError(f"{where}, column {column}: empty: fill it in or remove the row")
            mixture_id = row["mixture_ID"]
            if mixture_id in first_row_of:
                raise UserError(f"{where}, column mixture_ID: {mixture_id} is also row {first_row_of[mixture_id]}: "
                                f"mixture IDs must be unique")
            first_row_of[mixture_id] = number
            utterances.append(Utterance(mixture_id, _local_path(row["mixture_path"], root),
                                        [_local_path(row[c], root) for c in source_columns], where))
    return utterances


def zoo_utterances(root, role, num_spks):
    """Utterances of {root}/{role}/mix/*.wav with sources of the same name in s1/, s2/, ..."""
    mix_dir = root / role / "mix"
    if not mix_dir.is_dir():
        raise UserError(f"{mix_dir}: no such folder (the model-zoo layout needs tr/, cv/ and tt/)")
    source_dirs = sorted((d for d in (root / role).iterdir() if re.fullmatch(r"s\d+", d.name)),
                         key=lambda d: int(d.name[1:]))
    if len(source_dirs) != num_spks:
        raise UserError(f"{root / role}: {len(source_dirs)} source folders (s1/, s2/, ...) but num_spks is "
                        f"{num_spks}: pass --num_spks {len(source_dirs) or 2} or add the missing folders")
    return [Utterance(wav.stem, wav, [d / wav.name for d in source_dirs])
            for wav in sorted(mix_dir.glob("*.wav"))]


def list_utterances(in_dir, cfg):
    """{role: [Utterance]} for tr, cv, tt."""
    layout, root = find_layout(in_dir, cfg.sample_rate)
    if layout == "zoo":
        split_of = {role: zoo_utterances(root, role, cfg.num_spks) for role in ROLES}
    else:
        splits = dict(zip(ROLES, (cfg.train_split, cfg.valid_split, cfg.test_split)))
        split_of = {role: librimix_utterances(root, splits[role], cfg.mix_type, cfg.num_spks) for role in ROLES}
    for role, utterances in split_of.items():
        if not utterances:
            raise UserError(f"{in_dir}: the {role} split has no utterances")
        utterances.sort(key=lambda u: u.mixture_id)
    print(f"{layout} layout at {root}: " +
          ", ".join(f"{role} {len(u)}" for role, u in split_of.items()), flush=True)
    return split_of


def read_audio(path, sample_rate):
    """16-bit PCM samples of a mono file at `sample_rate`, and its original rate."""
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
        if info.channels != 1:
            raise AudioError(f"{path}: {info.channels} channels, but mixtures and sources must be "
                             f"mono: down-mix it (e.g. sox in.wav -c 1 out.wav) or pass --skip_bad")
        if info.frames == 0:
            raise AudioError(f"{path}: no samples (empty file): remove it or pass --skip_bad")
        if info.samplerate == sample_rate and info.subtype == "PCM_16":
            return sf.read(str(path), dtype="int16")[0], info.samplerate
        audio, rate = sf.read(str(path), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: unreadable audio ({err}): replace it or pass --skip_bad") from None
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: holds NaN or infinite samples: repair it or pass --skip_bad")
    peak = float(np.abs(audio).max())
    if peak > 1:
        raise AudioError(f"{path}: samples beyond full scale (peak {peak:.2f}) would be clipped in 16-bit "
                         f"storage: scale the mixture and its sources down together, or pass --skip_bad")
    if rate != sample_rate:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate)
    return np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16), rate


def read_utterance(utt, sample_rate):
    """(record for MindRecord, rates seen) or AudioError for one mixture and its sources."""
    for path in (utt.mixture_path, *utt.source_paths):
        if utt.listed_in and not path.is_file():
            raise AudioError(f"{path}: no such file, listed in {utt.listed_in}: correct the path or pass "
                             f"--skip_bad")
    mixture, rate = read_audio(utt.mixture_path, sample_rate)
    rates = {rate: utt.mixture_path}
    sources = []
    for path in utt.source_paths:
        source, rate = read_audio(path, sample_rate)
        rates.setdefault(rate, path)
        if len(source) != len(mixture):
            raise AudioError(f"{path}: {len(source)} samples, but its mixture {utt.mixture_path} has "
                             f"{len(mixture)}: regenerate the pair or pass --skip_bad")
        sources.append(source)
    record = {"mixture": mixture.astype("<i2").tobytes(),
              "sources": np.stack(sources).astype("<i2").tobytes(),
              "length": len(mixture), "mixture_ID": utt.mixture_id}
    return record, rates


def _try_read(utt, sample_rate):
    try:
        return read_utterance(utt, sample_rate)
    except AudioError as err:
        return err, {}


class SplitWriter:
    """Reads one split's utterances in parallel and writes its MindRecord shards and manifests."""

    def __init__(self, cfg, work_dir, role, name):
        self.cfg, self.work_dir, self.role, self.name = cfg, work_dir, role, name
        self.kept, self.lengths, self.dropped = [], [], 0
        self.resampled_from = {}

    def run(self, utterances, pool):
        writer = FileWriter(str(self.work_dir / self.name),
                            shard_num=max(1, min(self.cfg.shard_num, len(utterances))), overwrite=True)
        writer.add_schema(SCHEMA, "librimix utterances, 16-bit PCM")
        with tqdm(total=len(utterances), desc=f"preprocess {self.role}", unit="utt") as bar:
            for start in range(0, len(utterances), WRITE_CHUNK):
                chunk = utterances[start:start + WRITE_CHUNK]
                results = pool.map(_try_read, chunk, [self.cfg.sample_rate] * len(chunk))
                records = [self._account(utt, *result) for utt, result in zip(chunk, results)]
                records = [r for r in records if r is not None]
                if records:
                    writer.write_raw_data(records)
                bar.update(len(chunk))
        if not self.kept:
            raise UserError(f"no usable utterance in the {self.role} split (all {self.dropped} skipped)")
        writer.commit()
        self._write_manifests()

    def _account(self, utt, record, rates):
        """The record to write, or None for a skipped utterance; stops on one unless skip_bad."""
        if isinstance(record, AudioError):
            if not self.cfg.skip_bad:
                raise UserError(str(record))
            tqdm.write(f"skipped: {record}")
            self.dropped += 1
            return None
        for rate, path in rates.items():
            if rate != self.cfg.sample_rate and rate not in self.resampled_from:
                self.resampled_from[rate] = path
                tqdm.write(f"warning: {path} is at {rate} Hz: resampling it and every other "
                           f"{rate}-Hz file to {self.cfg.sample_rate} Hz")
        self.kept.append(utt)
        self.lengths.append(record["length"])
        return record

    def _write_manifests(self):
        folder = self.work_dir / self.role
        folder.mkdir()
        num_spks = len(self.kept[0].source_paths)
        for k, name in enumerate(["mix"] + [f"s{k + 1}" for k in range(num_spks)]):
            entries = [[str((u.mixture_path if k == 0 else u.source_paths[k - 1]).resolve()), n]
                       for u, n in zip(self.kept, self.lengths)]
            with open(folder / f"{name}.json", "w") as f:
                json.dump(entries, f, indent=1)


class OutputSet:
    """preprocess.py's outputs in out_dir, replaced as one set by a single atomic rename.

    The files live in out_dir/.preprocess/<set>/; out_dir/<name> are relative links through
    out_dir/.preprocess/current, itself a link to the newest complete set. Switching `current` is
    one rename, so at every instant a reader sees the whole old set or the whole new one, and a kill
    at any point leaves one of them; the next run removes what a killed run left behind. Only
    these links are ever replaced: any other file in out_dir is the user's and is not touched.
    """

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.home = self.out_dir / ".preprocess"
        self.current = self.home / "current"

    def link_target(self, name):
        return os.path.join(".preprocess", "current", name)

    def is_ours(self, name):
        path = self.out_dir / name
        return path.is_symlink() and os.readlink(path) == self.link_target(name)

    def check_free(self, names):
        """UserError naming the first of `names` in out_dir that preprocess.py did not write."""
        for name in names:
            path = self.out_dir / name
            if (path.exists() or path.is_symlink()) and not self.is_ours(name):
                raise UserError(f"{path} exists and was not written by this version of preprocess.py, "
                                f"which replaces only its own outputs: move it away (or delete an older "
                                f"version's output) or choose another --out_dir")

    def clean_leftovers(self):
        """Remove what killed runs left: unfinished work folders, superseded sets, dangling links."""
        live = os.path.realpath(self.current) if self.current.is_symlink() else None
        for item in self.home.iterdir() if self.home.is_dir() else []:
            if item.name == "current":
                continue
            if item.is_symlink():  # current.new of a run killed while switching
                item.unlink()
                continue
            pid = re.fullmatch(r"work-(\d+)", item.name)
            if os.path.realpath(item) == live or (pid and process_alive(int(pid[1]))):
                continue
            shutil.rmtree(item, ignore_errors=True)
        for link in self.out_dir.iterdir():
            if self.is_ours(link.name) and not link.exists():
                link.unlink()

    def work_dir(self):
        self.home.mkdir(exist_ok=True)
        work = self.home / f"work-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        return work

    def commit(self, work_dir, step=lambda name: None):
        """Make work_dir's files the current set. `step` is called between the steps (tests kill there)."""
        finished = self.home / f"set-{time.time_ns()}"
        os.replace(work_dir, finished)
        step("set in place")
        names = sorted(p.name for p in finished.iterdir())
        self.check_free(names)
        for name in names:
            if not self.is_ours(name):
                os.symlink(self.link_target(name), self.out_dir / name)
                step(f"linked {name}")
        new_current = self.home / "current.new"
        new_current.unlink(missing_ok=True)
        os.symlink(finished.name, new_current)
        step("new link to the set")
        os.replace(new_current, self.current)
        step("switched")
        self.clean_leftovers()
        return names


def planned_names(split_of, cfg):
    """The names preprocess.py will write in out_dir: MindRecord shards and index files, manifests."""
    names = list(ROLES)
    for role, name in zip(ROLES, (cfg.train_name, cfg.valid_name, cfg.test_name)):
        shards = max(1, min(cfg.shard_num, len(split_of[role])))
        files = [name] if shards == 1 else [f"{name}{k}" for k in range(shards)]
        names += files + [f + ".db" for f in files]
    return names


def _write_and_commit(split_of, outputs, names, writers, cfg, step):
    """Write every split into a work folder, then make it the current set; returns the names."""
    work_dir = outputs.work_dir()
    try:
        with ThreadPoolExecutor(max(1, cfg.num_workers)) as pool:
            for role, utterances in split_of.items():
                writers[role] = SplitWriter(cfg, work_dir, role, names[role])
                writers[role].run(utterances, pool)
        return outputs.commit(work_dir, step)
    except OSError as err:
        raise UserError(f"{outputs.out_dir}: cannot write the outputs ({err.strerror}); it keeps its "
                        f"previous contents") from None
    except RuntimeError as err:  # MindRecord's writer reports a full disk (and its other failures) so
        raise UserError(f"{outputs.out_dir}: cannot write the outputs ({reason_of(err)}); it keeps its "
                        f"previous contents") from None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def preprocess(in_dir, out_dir, cfg, step=lambda name: None):
    """Write manifests and MindRecord files for tr, cv, tt; returns a summary dict.

    step: called between the steps of putting the outputs in place (tests kill the process there).
    """
    started = time.time()
    check_output_dir(out_dir, "--out_dir")
    with one_writer(out_dir, "--out_dir"):
        split_of = list_utterances(in_dir, cfg)
        outputs = OutputSet(out_dir)
        outputs.check_free(planned_names(split_of, cfg))
        names = dict(zip(ROLES, (cfg.train_name, cfg.valid_name, cfg.test_name)))
        writers = {}
        with made_folders(outputs.home):
            outputs.clean_leftovers()
            written = _write_and_commit(split_of, outputs, names, writers, cfg, step)
    summary = {role: {"utterances": len(w.kept), "hours": sum(w.lengths) / cfg.sample_rate / 3600,
                      "dropped": w.dropped, "resampled_rates": sorted(w.resampled_from)}
               for role, w in writers.items()}
    summary.update(files=written, out_dir=str(out_dir), seconds=time.time() - started)
    return summary


def print_summary(summary):
    for role in ROLES:
        s = summary[role]
        print(f"{role}: {s['utterances']} utterances, {s['hours']:.2f} h, {s['dropped']} dropped"
              + (f", resampled from {s['resampled_rates']} Hz" if s["resampled_rates"] else ""))
    print(f"wrote {len(summary['files'])} files/folders to {summary['out_dir']} "
          f"in {summary['seconds']:.1f} s")
