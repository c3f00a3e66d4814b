"""scripts/compare_with_asteroid.py, the parts that run without the peer's environment."""
import json
import subprocess
import sys

from scripts.compare_with_asteroid import PEER_WITH_ENCODER_RELU

STAND_IN_TRAINER = """import json, sys
CONFIG = dict(n_src=2, mask_act="relu")
def main():
    json.dump({"config": CONFIG, "argv": sys.argv}, open(sys.argv[-1], "w"))
if __name__ == "__main__":
    raise SystemExit("run as a script: main() would have seen the trainer's own CONFIG")
"""


def test_the_peer_trains_with_the_encoder_relu_added_to_its_settings(tmp_path):
    """--peer_encoder_relu: the peer's trainer runs its own main() with its own arguments, its
    CONFIG unchanged but for encoder_activation."""
    trainer, seen = tmp_path / "train_asteroid.py", tmp_path / "seen.json"
    trainer.write_text(STAND_IN_TRAINER)
    subprocess.run([sys.executable, "-c", PEER_WITH_ENCODER_RELU, str(trainer), "--seed", "3", str(seen)],
                   check=True)
    got = json.loads(seen.read_text())
    assert got["config"] == {"n_src": 2, "mask_act": "relu", "encoder_activation": "relu"}
    assert got["argv"] == [str(trainer), "--seed", "3", str(seen)]
