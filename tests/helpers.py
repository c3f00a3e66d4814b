"""What the tests share: the tiny model they train, export and separate with (seconds on two CPU
cores), and the scripts' main functions run as a user runs the scripts."""
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_MODEL = ["--in_channels", "16", "--hidden_channels", "16", "--bn_channels", "16",
              "--num_layers", "1", "--K", "20", "--kernel_size", "16"]
TINY_TRAINING = TINY_MODEL + ["--segment", "1", "--batch_size", "2"]


def script_main(name):
    """The main() of an entry script (evaluate.py, ...), executed from its file as `python name`
    executes it, without importing the script as a module."""
    return runpy.run_path(str(ROOT / name), run_name=Path(name).stem)["main"]


def write_310_inputs(cfg, infer_dir):
    """preprocess_310.py's work for cfg's test split: files_310.write_inputs; returns the manifest."""
    from data import mindrecord_file, read_split
    from files_310 import write_inputs
    from metrics import fixed_length_protocol
    return write_inputs(read_split(mindrecord_file(cfg.data_dir, cfg.test_name), cfg.num_spks), infer_dir,
                        fixed_length_protocol(cfg.eval_protocol), cfg.samples("export_length"), cfg.num_spks,
                        cfg.sample_rate)
