"""Export a checkpoint for deployment: MindIR (default), AIR (Ascend only) or ONNX.

    python export.py --ckpt_path outputs/demo/best.ckpt [--file_format MINDIR] [--export_length 32000]

The exported network takes one mixture [1, export_length] and returns [1, num_spks, export_length],
the fixed shape the Ascend 310 app feeds it (longer audio goes through in pieces: preprocess_310.py).
"""
import argparse
from pathlib import Path

from config import UserError, load_config, run_main, setup_device

import mindspore as ms
import numpy as np

from fileio import atomic_path, check_output_file
from network_define import network_from_checkpoint

SUFFIX = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}


def export_network(net, file_name, file_format, length, target):
    """Write net with input [1, length] to file_name + the format's suffix; returns that path."""
    if file_format == "AIR" and target != "Ascend":
        raise UserError(f"AIR export needs an Ascend device (this run is on {target}): use "
                        f"--file_format MINDIR, which the Ascend 310 app also loads")
    net.set_train(False)
    example = ms.Tensor(np.zeros((1, length), np.float32))
    path = Path(file_name + SUFFIX[file_format])
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # exported under a hidden name and renamed: an earlier export stays whole until then
        with atomic_path(path) as tmp:
            ms.export(net, example, file_name=str(tmp.with_suffix("")), file_format=file_format)
    except (RuntimeError, TypeError, ValueError) as err:
        if file_format != "ONNX":
            raise
        first_line = next((line for line in str(err).splitlines() if line.strip()), "unknown error")
        raise UserError(f"MindSpore {ms.__version__} cannot export this network to ONNX "
                        f"({first_line.strip()}): export MINDIR instead") from None
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file_name", default="dprnn", help="output path without suffix")
    cfg = load_config(argv, parser)
    check_output_file(cfg.file_name + SUFFIX[cfg.file_format], "--file_name")
    target = setup_device(cfg)
    net, cfg = network_from_checkpoint(cfg)
    path = export_network(net, cfg.file_name, cfg.file_format, cfg.export_length, target)
    print(f"exported {cfg.ckpt_path} as {cfg.file_format} to {path} (input [1, {cfg.export_length}])")


if __name__ == "__main__":
    run_main(main)
