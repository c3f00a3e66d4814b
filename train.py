"""Train DPRNN on preprocess.py's MindRecord files: standalone or data-parallel, resumable.

    python train.py --data_dir data --output_dir outputs [--resume auto] [--max_steps N]

Writes into output_dir: config.yaml, periodic checkpoints dprnn-e{epoch}-s{step}.ckpt (weights,
Adam moments and the training state), best.ckpt (weights of the best validation SI-SNR),
train_log.csv and train_curves.png. In data-parallel runs only rank 0 writes.
"""

from config import load_config

from errors import ArgumentParser, run_main
from trainer import train


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    train(load_config(argv, parser, offers=("data_dir", "train_name", "valid_name", "num_workers", "sample_rate",
                                            "segment", "segment_mode", "dynamic_mixing", "cv_maxlen", "model",
                                            "train", "device")))


if __name__ == "__main__":
    run_main(main)
