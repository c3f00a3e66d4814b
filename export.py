"""Export a checkpoint for deployment: MindIR (default), AIR (Ascend only) or ONNX.

    python export.py --ckpt_path outputs/demo/best.ckpt [--export_target ascend|cpu|gpu]
        [--file_format MINDIR] [--export_length 4]

The exported network takes one mixture of export_length seconds, [1, L] with L = export_length x
sample_rate, and returns [1, num_spks, L]: the fixed shape the Ascend 310 app feeds it (longer
audio goes through in pieces: preprocess_310.py).

A MindIR is written in the form of the device that will run it (--export_target; default: this
host's): the ascend form's LSTMs are DynamicRNN nodes in float16, which only Ascend runs; the cpu and
gpu forms' are LSTM nodes, which Ascend cannot build. Every operator of the written file is checked
against its target (mindir.py) before the file takes its name. An ONNX file (the cpu form, for
onnxruntime) is also checked, as a note, for the second route to Ascend: MindSpore Lite's
converter_lite (scripts/convert_310.sh; `--check_onnx FILE` checks one again).
"""

from config import load_config

from checkpoint import trained_network
from device import setup_device
from errors import ArgumentParser, run_main
from fileio import check_output_file, one_writer_of_file
from mindir import (SUFFIX, TARGETS, check_export_target, check_form, check_onnx_for_ascend, check_operators,
                    export_network)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file_name", default="dprnn", help="output path (the format's suffix is added)")
    parser.add_argument("--check_mindir", default="", help="only check that this MindIR is of the "
                        "--export_target form and that every operator of it runs there")
    parser.add_argument("--check_onnx", default="", help="only check that every operator of this ONNX file "
                        "converts for Ascend with MindSpore Lite's converter_lite (scripts/convert_310.sh)")
    cfg = load_config(argv, parser, offers=("ckpt_path", "export", "device"))
    if cfg.check_onnx:
        print(check_onnx_for_ascend(cfg.check_onnx))
        return
    host = setup_device(**cfg.group("device"))
    export_target = host.lower() if cfg.export_target == "auto" else cfg.export_target
    if cfg.check_mindir:
        check_form(cfg.check_mindir, export_target)
        print(check_operators(cfg.check_mindir, export_target))
        return
    suffix = SUFFIX[cfg.file_format]
    # `--file_name dprnn.mindir` means dprnn.mindir, not dprnn.mindir.mindir
    file_name = cfg.file_name[:-len(suffix)] if cfg.file_name.lower().endswith(suffix) else cfg.file_name
    check_output_file(file_name + suffix, "--file_name")
    check_export_target(cfg.file_format, export_target, host)
    with one_writer_of_file(file_name + suffix, "--file_name"):
        export(cfg, file_name, export_target)


def export(cfg, file_name, export_target):
    net, cfg = trained_network(cfg, TARGETS[export_target])
    length = cfg.samples("export_length")
    path, summary = export_network(net, file_name, cfg.file_format, length, export_target)
    if summary:
        print(summary)
    print(f"exported {cfg.ckpt_path} as {cfg.file_format} for {export_target} to {path} (input [1, {length}]: "
          f"{cfg.export_length:g} s at {cfg.sample_rate} Hz)")


if __name__ == "__main__":
    run_main(main)
