"""Benchmarks, one measurement per process, each printing one JSON line.

    python bench.py data [--data_dir data] [--passes 3]   # training segments/s read from MindRecord

Without MindRecord files in data_dir, `data` first makes the demo LibriMix set and preprocesses it
into a temporary folder.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from config import UserError, load_config, run_main

from data import mindrecord_file, train_dataset
from preprocess import preprocess


def bench_data(cfg, epochs):
    """Segments per second through the training pipeline, over `epochs` epochs (first excluded)."""
    path = mindrecord_file(cfg.data_dir, cfg.train_name)
    times, segments, batches = [], 0, 0
    for epoch in range(epochs + 1):
        started = time.perf_counter()
        dataset, info = train_dataset(path, cfg, epoch)
        for _ in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1):
            if epoch:
                batches += 1
        if epoch:
            times.append(time.perf_counter() - started)
            segments += info["num_segments"] // cfg.batch_size * cfg.batch_size
    seconds = sum(times)
    return {"what": "data", "segments_per_s": round(segments / seconds, 1),
            "batches_per_s": round(batches / seconds, 2), "batch_size": cfg.batch_size,
            "segment_s": cfg.segment, "segment_mode": cfg.segment_mode,
            "num_workers": cfg.num_workers, "passes": epochs, "segments_per_epoch": info["num_segments"]}


def demo_data_dir(cfg, work_dir):
    """Make and preprocess the demo LibriMix set under work_dir; returns the MindRecord folder."""
    from scripts.make_demo_data import make_librimix
    librimix = make_librimix(Path(work_dir) / "librimix", num_spks=cfg.num_spks)
    out_dir = Path(work_dir) / "data"
    preprocess(librimix, out_dir, cfg)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["data"])
    parser.add_argument("--passes", type=int, default=3, help="measured passes over the data (data)")
    cfg = load_config(argv, parser, verbose=False)
    with tempfile.TemporaryDirectory() as work_dir:
        try:
            mindrecord_file(cfg.data_dir, cfg.train_name)
        except UserError:
            cfg = cfg.updated(data_dir=str(demo_data_dir(cfg, work_dir)))
        print(json.dumps(bench_data(cfg, cfg.passes)))


if __name__ == "__main__":
    run_main(main)
