"""Export a checkpoint for deployment: MindIR (default), AIR (Ascend only) or ONNX.

    python export.py --ckpt_path outputs/demo/best.ckpt [--file_format MINDIR] [--export_length 4]

The exported network takes one mixture of export_length seconds, [1, L] with L = export_length x
sample_rate, and returns [1, num_spks, L]: the fixed shape the Ascend 310 app feeds it (longer
audio goes through in pieces: preprocess_310.py).
"""
import argparse

from config import load_config

from device import setup_device
from errors import run_main
from fileio import check_output_file
from network_define import SUFFIX, checkpoint_settings, export_network, network_from_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file_name", default="dprnn", help="output path without suffix")
    cfg = load_config(argv, parser)
    check_output_file(cfg.file_name + SUFFIX[cfg.file_format], "--file_name")
    target = setup_device(**cfg.group("device"))
    net, settings = network_from_checkpoint(cfg.ckpt_path, checkpoint_settings(cfg), cfg.explicit)
    cfg = cfg.updated(**settings)
    length = cfg.samples("export_length")
    path = export_network(net, cfg.file_name, cfg.file_format, length, target)
    print(f"exported {cfg.ckpt_path} as {cfg.file_format} to {path} (input [1, {length}]: "
          f"{cfg.export_length:g} s at {cfg.sample_rate} Hz)")


if __name__ == "__main__":
    run_main(main)
