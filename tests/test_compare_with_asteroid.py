"""scripts/compare_with_asteroid.py, the parts that run without the peer's environment."""
import json
import subprocess
import sys

import pytest
import yaml

from config import load_config
from errors import UserError
from scripts.compare_with_asteroid import DEMO_CONFIG, PEER_WITH_SETTINGS, peer_settings

STAND_IN_TRAINER = """import json, sys
CONFIG = dict(n_src=2, mask_act="relu", n_filters=64)
def main():
    json.dump({"config": CONFIG, "argv": sys.argv}, open(sys.argv[-1], "w"))
if __name__ == "__main__":
    raise SystemExit("run as a script: main() would have seen the trainer's own CONFIG")
"""


def test_the_peer_trains_with_the_settings_given_to_its_config(tmp_path):
    """The peer's trainer runs its own main() with its own arguments, its CONFIG updated with the
    settings (and nothing else changed)."""
    trainer, seen = tmp_path / "train_asteroid.py", tmp_path / "seen.json"
    trainer.write_text(STAND_IN_TRAINER)
    settings = json.dumps({"n_filters": 128, "encoder_activation": "relu"})
    subprocess.run([sys.executable, "-c", PEER_WITH_SETTINGS, str(trainer), settings, "--seed", "3", str(seen)],
                   check=True)
    got = json.loads(seen.read_text())
    assert got["config"] == {"n_src": 2, "mask_act": "relu", "n_filters": 128, "encoder_activation": "relu"}
    assert got["argv"] == [str(trainer), "--seed", "3", str(seen)]


def demo_config(*overrides):
    return load_config(["--config_path", str(DEMO_CONFIG), *overrides], verbose=False)


def test_the_peer_gets_the_demo_architecture():
    """The peer's settings are the demo config's model (read here from the YAML files themselves),
    in Asteroid's names."""
    model = yaml.safe_load(open(DEMO_CONFIG.parents[1] / "default_config.yaml"))["model"]
    model.update(yaml.safe_load(open(DEMO_CONFIG))["model"])
    assert peer_settings(demo_config()) == {
        "n_src": model["num_spks"], "sample_rate": 8000, "n_filters": model["in_channels"],
        "kernel_size": model["kernel_size"], "stride": model["kernel_size"] // 2, "bn_chan": model["bn_channels"],
        "hid_size": model["hidden_channels"], "chunk_size": model["K"], "hop_size": model["K"] // 2,
        "n_repeats": model["num_layers"], "norm_type": "gLN", "rnn_type": model["rnn_type"],
        "bidirectional": True, "dropout": 0}


def test_the_peer_follows_norm_rnn_and_direction():
    """Asteroid's cLN is this project's per-position ln (its gLN our gln), and its `bidirectional`
    covers the inter-chunk RNNs only: this project's causal model."""
    settings = peer_settings(demo_config("--norm", "ln", "--causal", "true", "--rnn_type", "GRU",
                                         "--num_spks", "3"))
    assert {k: settings[k] for k in ("norm_type", "bidirectional", "rnn_type", "n_src")} == {
        "norm_type": "cLN", "bidirectional": False, "rnn_type": "GRU", "n_src": 3}


@pytest.mark.parametrize("overrides, named", [(("--norm", "cgln", "--causal", "true"), "'cgln'"),
                                              (("--bidirectional", "false"), "bidirectional: true"),
                                              (("--dropout", "0.1"), "dropout: 0")])
def test_a_model_the_peer_cannot_build_is_refused(overrides, named):
    with pytest.raises(UserError, match=named):
        peer_settings(demo_config(*overrides))
