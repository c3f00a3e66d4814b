"""scripts/compare_with_asteroid.py, the parts that run without the peer's environment."""
import json
import subprocess
import sys

import yaml

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


def test_the_peer_gets_the_demo_architecture():
    """The peer's settings are the demo config's model (read here from the YAML files themselves),
    in Asteroid's names; the encoder ReLU only when asked for."""
    model = yaml.safe_load(open(DEMO_CONFIG.parents[1] / "default_config.yaml"))["model"]
    model.update(yaml.safe_load(open(DEMO_CONFIG))["model"])
    expected = {"n_filters": model["in_channels"], "kernel_size": model["kernel_size"],
                "stride": model["kernel_size"] // 2, "bn_chan": model["bn_channels"],
                "hid_size": model["hidden_channels"], "chunk_size": model["K"], "hop_size": model["K"] // 2,
                "n_repeats": model["num_layers"]}
    assert peer_settings() == expected
    assert peer_settings(encoder_relu=True) == dict(expected, encoder_activation="relu")
