"""Each script's --help lists the settings that script reads, with their meaning, and no others: a
training setting on separate.py's help would be one the user changes for nothing."""
import re

import pytest
from helpers import TINY_MODEL, TINY_TRAINING, run_in_process, script_main, write_310_inputs

import config
from checkpoint import MODEL_ARGS, build_network, model_args, save_checkpoint
from config import load_config

SETTINGS = config._read_yaml(config.DEFAULT_CONFIG)
ALL_KEYS = {key for group in SETTINGS.values() for key in group}
# a checkpoint brings its model settings (and sample rate); the defaults are read as the fallback
FROM_CHECKPOINT = set(SETTINGS["model"]) | {"sample_rate"}


def flags_in_help(script, capsys):
    with pytest.raises(SystemExit):
        script_main(script)(["--help"])
    return set(re.findall(r"^  --(\w+)", capsys.readouterr().out, re.M))


def test_separate_help_shows_how_to_separate_and_no_training_setting(capsys):
    flags = flags_in_help("separate.py", capsys)
    assert not flags & set(SETTINGS["train"]) and not flags & {"shard_num", "segment", "lr_patience", "epochs"}
    assert {"ckpt_path", "window", "out_dir", "streaming", "block_ms", "device_target"} <= flags


def test_choices_and_meanings_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        script_main("export.py")(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--export_target {auto,cpu,gpu,ascend}" in text
    assert "the device that will run the exported model" in text and "(default: auto)" in text


@pytest.fixture
def reads(monkeypatch):
    """The config settings a script reads while it runs (not those load_config checks together)."""
    seen, checking = set(), []
    get, group, samples, together = (config.Config.__getattr__, config.Config.group, config.Config.samples,
                                      config._check_together)

    def record(keys):
        if not checking:
            seen.update(key for key in keys if key in ALL_KEYS)

    def check_together(cfg):
        checking.append(True)
        try:
            together(cfg)
        finally:
            checking.pop()
    monkeypatch.setattr(config.Config, "__getattr__", lambda self, key: record([key]) or get(self, key))
    monkeypatch.setattr(config.Config, "group", lambda self, name: record(self._groups[name]) or group(self, name))
    monkeypatch.setattr(config.Config, "samples", lambda self, key: record([key]) or samples(self, key))
    monkeypatch.setattr(config, "_check_together", check_together)
    return seen


@pytest.fixture(scope="module")
def inputs(prepared, librimix, tmp_path_factory):
    cfg, data_dir = prepared
    base = tmp_path_factory.mktemp("help")
    tiny = load_config(["--data_dir", str(data_dir), *TINY_MODEL, "--export_length", "1"], verbose=False)
    save_checkpoint(build_network(tiny.group("model")), base / "tiny.ckpt", {MODEL_ARGS: model_args(tiny)})
    write_310_inputs(tiny, base / "infer")
    return dict(data=data_dir, librimix=librimix, ckpt=base / "tiny.ckpt", infer=base / "infer",
                mixture=sorted((librimix / "test" / "mix_clean").glob("*.wav"))[0])


RUNS = [  # (script, arguments, whether it loads a checkpoint)
    ("preprocess.py", ["--in_dir", "{librimix}", "--out_dir", "{out}/data"], False),
    ("train.py", ["--data_dir", "{data}", "--output_dir", "{out}/train", "--max_steps", "2", *TINY_TRAINING,
                  "--device_target", "CPU"], False),
    ("evaluate.py", ["--ckpt_path", "{ckpt}", "--data_dir", "{data}", "--results_dir", "{out}/results", "--cal_sdr",
                     "--device_target", "CPU"], True),
    ("separate.py", ["--ckpt_path", "{ckpt}", "{mixture}", "--out_dir", "{out}/separated", "--device_target", "CPU"],
     True),
    ("export.py", ["--ckpt_path", "{ckpt}", "--file_name", "{out}/dprnn", "--export_length", "1",
                   "--device_target", "CPU"], True),
    ("preprocess_310.py", ["--data_dir", "{data}", "--infer_dir", "{out}/infer", "--export_length", "1"], False),
]


@pytest.mark.parametrize("script, argv, with_checkpoint", RUNS, ids=[r[0] for r in RUNS])
def test_each_script_offers_every_setting_it_reads(inputs, tmp_path, capsys, reads, script, argv, with_checkpoint):
    offered = flags_in_help(script, capsys)
    run_in_process(script, *(a.format(out=tmp_path, **inputs) for a in argv))
    allowed = offered | (FROM_CHECKPOINT if with_checkpoint else set())
    assert reads and not reads - allowed, f"{script} reads {sorted(reads - allowed)} but offers no flag for them"
