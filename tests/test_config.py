"""One config: defaults, overrides by file and command line, typing, errors, device choice."""
import argparse

import pytest
import yaml

from config import DEFAULT_CONFIG, UserError, load_config
from errors import ArgumentParser
from device import available_devices, setup_device
from model import DPRNN, count_parameters

pytestmark = pytest.mark.fast  # bash scripts/run_tests.sh --fast


def test_defaults_are_the_model_zoo_ones():
    cfg = load_config([], verbose=False)
    expected = dict(sample_rate=8000, segment=4.0, cv_maxlen=8.0, in_channels=64,
                    hidden_channels=128, bn_channels=128, kernel_size=2, rnn_type="LSTM",
                    norm="gln", dropout=0.0, bidirectional=True, num_layers=6, K=250, num_spks=2,
                    batch_size=4, epochs=100, lr=1e-3, l2=1e-5, clip_norm=5.0,
                    device_target="auto", device_id=0)
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key
        assert type(getattr(cfg, key)) is type(value), key
    assert count_parameters(DPRNN(**cfg.group("model"))) == 3_650_945


def test_every_key_is_one_name_in_one_group():
    groups = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert set(groups) == {"data", "model", "train", "eval", "export", "device"}
    keys = [key for group in groups.values() for key in group]
    assert len(keys) == len(set(keys))


def test_command_line_overrides_are_typed():
    cfg = load_config(["--lr", "2e-3", "--bidirectional", "false", "--num_layers", "3",
                       "--rnn_type", "GRU", "--segment", "2"], verbose=False)
    assert (cfg.lr, cfg.bidirectional, cfg.num_layers, cfg.rnn_type) == (2e-3, False, 3, "GRU")
    assert cfg.segment == 2.0 and type(cfg.segment) is float
    assert cfg.group("model")["num_layers"] == 3


def test_bare_boolean_flag_means_true():
    assert load_config(["--skip_bad"], verbose=False).skip_bad is True
    assert load_config(["--skip_bad", "no"], verbose=False).skip_bad is False


def test_config_file_then_command_line(tmp_path):
    other = tmp_path / "small.yaml"
    other.write_text("model:\n  num_layers: 2\n  K: 100\ntrain:\n  lr: 5.0e-4\n")
    cfg = load_config(["--config_path", str(other), "--K", "50"], verbose=False)
    assert (cfg.num_layers, cfg.K, cfg.lr, cfg.batch_size) == (2, 50, 5e-4, 4)


@pytest.mark.parametrize("text, message", [
    ("model:\n  num_layer: 2\n", "unknown key model.num_layer"),
    ("modle:\n  K: 2\n", "unknown group 'modle'"),
    ("model:\n  K: two\n", "K takes a int"),
    ("model:\n  norm: batch\n", "norm must be one of"),
    ("model: [1, 2]\n", "must map group names"),
    ("model:\n  out_channels: 64\n", "unknown key model.out_channels"),
    ("model:\n  norm: cln\n", "norm must be one of gln, cgln, ln, got 'cln'"),
])
def test_bad_config_files_are_clear_errors(tmp_path, text, message):
    other = tmp_path / "bad.yaml"
    other.write_text(text)
    with pytest.raises(UserError, match=message):
        load_config(["--config_path", str(other)], verbose=False)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot read config .*nothere.yaml"):
        load_config(["--config_path", str(tmp_path / "nothere.yaml")], verbose=False)


@pytest.mark.parametrize("argv, message", [(["--lr", "fast"], "lr takes a float"),
                                           (["--bidirectional", "maybe"], "bidirectional takes true or false"),
                                           (["--num_layers", "2.5"], "num_layers takes a int"),
                                           (["--device_target", "TPU"], "device_target must be one of")])
def test_bad_values_are_clear_errors(argv, message):
    with pytest.raises(UserError, match=message):
        load_config(argv, verbose=False)


def test_a_command_line_error_is_one_line_not_the_usage_block():
    with pytest.raises(UserError) as err:
        load_config(["--num_layer", "2"], verbose=False)
    assert str(err.value).startswith("unrecognized arguments: --num_layer 2 (see python ")
    assert "\n" not in str(err.value) and "is a path" not in str(err.value)


@pytest.mark.parametrize("argv, path", [(["-mix.wav"], "-mix.wav"), (["a.wav", "--ckpt", "-x"], "-x"),
                                        (["a.wav", "--K", "-5", "-b"], "-b")])
def test_a_path_that_starts_with_a_dash_is_shown_the_way_out(argv, path):
    """argparse takes `-mix.wav` for an option; the one line says how to pass it as a path (and is
    not fooled by a negative number)."""
    parser = ArgumentParser()
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--ckpt", default="")
    with pytest.raises(UserError) as err:
        load_config(argv, parser=parser, verbose=False)
    assert f"if {path} is a path, write it as ./{path} (or --option=PATH)" in str(err.value), str(err.value)


def test_script_arguments_ride_along():
    parser = argparse.ArgumentParser()
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--ckpt", default="")
    cfg = load_config(["a.wav", "b.wav", "--ckpt", "x.ckpt", "--K", "20"], parser=parser, verbose=False)
    assert (cfg.inputs, cfg.ckpt, cfg.K) == (["a.wav", "b.wav"], "x.ckpt", 20)


def test_config_is_printed_once(capsys):
    load_config(["--lr", "0.01"])
    out = capsys.readouterr().out
    assert out.count("lr: 0.01") == 1 and out.count("model:") == 1


def test_auto_device_is_the_first_available_and_missing_ones_are_refused():
    available = available_devices()
    assert available[-1] == "CPU"
    cfg = load_config([], verbose=False)
    assert setup_device(**cfg.group("device")) == available[0]
    for target in ("Ascend", "GPU"):
        if target not in available:
            cfg = load_config(["--device_target", target], verbose=False)
            with pytest.raises(UserError, match=f"{target} was asked for.*only .*CPU"):
                setup_device(**cfg.group("device"))


# A bad value for every key of default_config.yaml, and what the one-line error must name.
BAD_VALUES = {
    "data_dir": [""], "mix_type": ["mix_noisy"], "train_split": [" "], "valid_split": [""], "test_split": [""],
    "train_name": ["a/b"], "valid_name": [""], "test_name": ["x/"], "shard_num": ["0", "1001"],
    "num_workers": ["0"], "skip_bad": ["maybe"], "sample_rate": ["0", "-8000"], "segment": ["0", "-1", "nan", "0.0001"],
    "segment_mode": ["sliding"], "dynamic_mixing": ["maybe"], "cv_maxlen": ["0", "inf", "-2", "0.0001"], "in_channels": ["0"],
    "hidden_channels": ["0"], "bn_channels": ["-1"], "kernel_size": ["1", "3"], "rnn_type": ["LSTMx"],
    "norm": ["bn"], "dropout": ["1", "-0.1", "nan"], "bidirectional": ["2"], "num_layers": ["0"], "K": ["1"], "init": ["he"],
    "num_spks": ["0", "9"], "output_dir": [""], "batch_size": ["0"], "epochs": ["0"], "max_steps": ["-1"],
    "lr": ["-1", "0", "nan", "inf"], "lr_schedule": ["linear"], "lr_patience": ["0"],
    "early_stop_patience": ["-1"], "l2": ["-0.5", "nan"], "clip_norm": ["0", "-5"], "recompute": ["often"],
    "grad_accumulation": ["0", "3"], "seed": ["-1"], "save_checkpoint_steps": ["-1"],
    "keep_checkpoint_max": ["0"], "report_items": ["-1", "two"],
    "resume": None, "distribute": ["yesno"], "compiled_validation": ["fast"], "valid_protocol": ["segments"], "ckpt_path": None,
    "cal_sdr": ["sure"], "eval_protocol": ["segments"], "eval_segment": ["-1", "0.0001"], "results_dir": [""], "window": ["-1", "0.0001"], "causal": ["sometimes"],
    "file_format": ["PB"], "export_target": ["npu", "Ascend"], "export_length": ["32000", "0", "0.0001"], "device_target": ["TPU"], "device_id": ["-1"],
    "mode": ["eager"], "kernel_fusion": ["perhaps"],
}
# resume and ckpt_path are paths checked where they are used (tests/test_bad_input.py)


def test_dynamic_mixing_needs_a_segment_per_talker_in_each_batch():
    with pytest.raises(UserError, match="batch_size 2 must be at least num_spks 3"):
        load_config(["--dynamic_mixing", "true", "--batch_size", "2", "--num_spks", "3"], verbose=False)
    assert load_config(["--dynamic_mixing", "true", "--batch_size", "3", "--num_spks", "3"],
                       verbose=False).dynamic_mixing is True


def test_every_length_is_in_seconds_and_converts_at_the_sample_rate():
    cfg = load_config(["--sample_rate", "16000", "--segment", "1.5", "--cv_maxlen", "2", "--eval_segment", "0.25",
                       "--window", "3", "--export_length", "0.1"], verbose=False)
    assert [cfg.samples(key) for key in ("segment", "cv_maxlen", "eval_segment", "window", "export_length")] == \
        [24000, 32000, 4000, 48000, 1600]
    with pytest.raises(UserError, match=r"export_length 32000.0 is out of range: allowed seconds"):
        load_config(["--export_length", "32000"], verbose=False)  # samples, as it was before


def test_every_key_has_bad_values_in_the_table():
    groups = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert set(BAD_VALUES) == {key for group in groups.values() for key in group}


@pytest.mark.parametrize("key, value", [(k, v) for k, values in BAD_VALUES.items() for v in values or []])
def test_bad_values_are_one_line_naming_the_key_and_value(key, value):
    with pytest.raises(UserError) as err:
        load_config([f"--{key}={value}"], verbose=False)
    message = str(err.value)
    assert "\n" not in message and key in message and (value.strip() in message or value == " "), message
