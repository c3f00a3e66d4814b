"""LibriMix (or the model zoo's tr/cv/tt folders) -> JSON manifests + sharded MindRecord files.

    python preprocess.py --in_dir Libri2Mix/wav8k/min --out_dir data

Input layouts, detected automatically:
  LibriMix as its generator writes it: metadata/mixture_{split}_{mix_type}.csv + {split}/...
    (paths in the CSVs that do not exist here are looked up under --in_dir instead);
  the model zoo's: {tr,cv,tt}/{mix,s1,s2,...}/*.wav.
Output in out_dir: {tr,cv,tt}/mix.json, s1.json, ... (lists of [wav_path, num_samples]) and
MindRecord files (train_name / valid_name / test_name, shard_num shards each) holding whole
utterances as 16-bit PCM. Everything is built in a temporary folder and moved into place only when
complete, so a failure or Ctrl-C leaves out_dir as it was.
"""

from config import load_config

from errors import ArgumentParser, run_main
from librimix import preprocess, print_summary


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in_dir", required=True, help="LibriMix folder (e.g. Libri2Mix/wav8k/min) "
                        "or model-zoo folder with tr/ cv/ tt/")
    parser.add_argument("--out_dir", default=None, help="output folder (default: data_dir)")
    cfg = load_config(argv, parser, offers=("data_dir", "mix_type", "train_split", "valid_split", "test_split",
                                            "train_name", "valid_name", "test_name", "shard_num", "num_workers",
                                            "skip_bad", "sample_rate", "num_spks"))
    print_summary(preprocess(cfg.in_dir, cfg.out_dir or cfg.data_dir, cfg))


if __name__ == "__main__":
    run_main(main)
