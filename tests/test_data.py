"""data.py: the model zoo's segmentation, epoch plans and shards, and what the pipelines yield."""
import numpy as np
import pytest
import soundfile as sf

from config import UserError
from data import eval_dataset, mindrecord_file, plan_epoch, read_index, segment_starts, train_dataset


def test_fixed_segments_hand_computed():
    # segment 4, hop 2: length 10 -> 0, 2, 4, 6 and the last 4 samples (6) again, as the zoo does
    assert segment_starts(10, 4, 2) == [0, 2, 4, 6, 6]
    assert segment_starts(8, 4, 2) == [0, 2, 4]
    assert segment_starts(9, 4, 2) == [0, 2, 4, 5]
    assert segment_starts(4, 4, 2) == [0]
    assert segment_starts(3, 4, 2) == []


def test_fixed_plan_covers_every_segment_once_across_shards():
    lengths = [10, 8, 3, 9]  # 5 + 3 + 0 + 4 = 12 segments, 3 shards of 4
    shards = [plan_epoch(lengths, 4, "fixed", seed=0, epoch=2, num_shards=3, shard_id=k) for k in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    every = sorted(p for s in shards for p in s)
    expected = sorted((i, s) for i, n in enumerate(lengths) for s in segment_starts(n, 4, 2))
    assert every == expected


def test_uneven_shards_are_padded_to_equal_size():
    lengths = [10, 8]  # 8 segments over 3 shards -> 3 each, one wrapped around
    shards = [plan_epoch(lengths, 4, "fixed", 0, 0, 3, k) for k in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert set(p for s in shards for p in s) == {(0, 0), (0, 2), (0, 4), (0, 6), (1, 0), (1, 2), (1, 4)}


def test_plans_are_reproducible_and_reshuffled_each_epoch():
    lengths = list(range(40, 400, 7))
    a = plan_epoch(lengths, 32, "fixed", seed=3, epoch=1)
    assert a == plan_epoch(lengths, 32, "fixed", seed=3, epoch=1)
    assert a != plan_epoch(lengths, 32, "fixed", seed=3, epoch=2)
    assert sorted(a) == sorted(plan_epoch(lengths, 32, "fixed", seed=3, epoch=2))


def test_random_crops_are_in_range_one_per_long_utterance():
    lengths = [100, 20, 31, 32, 500]
    plan = plan_epoch(lengths, 32, "random", seed=1, epoch=0)
    assert sorted(i for i, _ in plan) == [0, 3, 4]
    assert all(0 <= s <= lengths[i] - 32 for i, s in plan)
    starts = {dict(plan_epoch(lengths, 32, "random", seed=1, epoch=e))[4] for e in range(10)}
    assert len(starts) > 1  # a fresh crop each epoch


@pytest.mark.parametrize("mode", ["fixed", "random"])
def test_training_batches_are_the_planned_slices_of_the_wavs(prepared, librimix, mode):
    cfg, data_dir = prepared
    cfg = cfg.updated(segment=1.5, batch_size=3, segment_mode=mode)
    path = mindrecord_file(data_dir, cfg.train_name)
    lengths, ids = read_index(path)
    segment_len = 12000
    plan = plan_epoch(lengths, segment_len, mode, cfg.seed, epoch=4, num_shards=2, shard_id=1)
    dataset, info = train_dataset(path, cfg, epoch=4, num_shards=2, shard_id=1)
    assert info["num_segments"] == len(plan)
    batches = list(dataset.create_dict_iterator(output_numpy=True, num_epochs=1))
    assert len(batches) == len(plan) // 3
    for b, batch in enumerate(batches):
        assert batch["mixture"].shape == (3, segment_len) and batch["sources"].shape == (3, 2, segment_len)
        np.testing.assert_array_equal(batch["lens"], segment_len)
        for row in range(3):
            index, start = plan[b * 3 + row]
            stem = ids[index]
            mix = sf.read(librimix / "train-100" / "mix_clean" / f"{stem}.wav", dtype="float32")[0]
            s2 = sf.read(librimix / "train-100" / "s2" / f"{stem}.wav", dtype="float32")[0]
            np.testing.assert_array_equal(batch["mixture"][row], mix[start:start + segment_len])
            np.testing.assert_array_equal(batch["sources"][row, 1], s2[start:start + segment_len])


def test_dynamic_mixing_pairs_each_talker_with_another_segments_talker(prepared, librimix):
    cfg, data_dir = prepared
    cfg = cfg.updated(segment=1.5, batch_size=3, dynamic_mixing=True)
    path = mindrecord_file(data_dir, cfg.train_name)
    lengths, ids = read_index(path)
    segment_len = 12000
    plan = plan_epoch(lengths, segment_len, "fixed", cfg.seed, epoch=1)
    dataset, _ = train_dataset(path, cfg, epoch=1)
    batches = list(dataset.create_dict_iterator(output_numpy=True, num_epochs=1))
    assert len(batches) == len(plan) // 3

    def wav(folder, index, start):
        signal = sf.read(librimix / "train-100" / folder / f"{ids[index]}.wav", dtype="float32")[0]
        return signal[start:start + segment_len]

    new_pairs = 0
    for b, batch in enumerate(batches):
        rows = plan[b * 3:b * 3 + 3]
        for row, (index, start) in enumerate(rows):
            partner = rows[(row - 1) % 3]  # talker 2 comes from the segment one place before
            s1, s2 = wav("s1", index, start), wav("s2", *partner)
            np.testing.assert_array_equal(batch["sources"][row, 0], s1)
            np.testing.assert_array_equal(batch["sources"][row, 1], s2)
            # the new mixture is the sum of its talkers, plus what the file's mixture held beyond its own
            residual = wav("mix_clean", index, start) - wav("s1", index, start) - wav("s2", index, start)
            np.testing.assert_allclose(batch["mixture"][row], s1 + s2 + residual, atol=1e-6)
            new_pairs += partner[0] != index
    assert new_pairs > len(plan) // 2


def test_evaluation_batches_are_whole_padded_utterances(prepared, librimix):
    cfg, data_dir = prepared
    dataset = eval_dataset(mindrecord_file(data_dir, cfg.test_name), 2, batch_size=2)
    seen = 0
    for batch in dataset.create_dict_iterator(output_numpy=True, num_epochs=1):
        width = batch["mixture"].shape[1]
        assert width == batch["lens"].max()
        for row, stem in enumerate(batch["mixture_ID"]):
            mix = sf.read(librimix / "test" / "mix_clean" / f"{stem}.wav", dtype="float32")[0]
            s1 = sf.read(librimix / "test" / "s1" / f"{stem}.wav", dtype="float32")[0]
            n = batch["lens"][row]
            assert n == len(mix)
            np.testing.assert_array_equal(batch["mixture"][row, :n], mix)
            np.testing.assert_array_equal(batch["sources"][row, 0, :n], s1)
            assert not batch["mixture"][row, n:].any()
            seen += 1
    assert seen == 3


def test_validation_cut_to_max_length(prepared):
    cfg, data_dir = prepared
    dataset = eval_dataset(mindrecord_file(data_dir, cfg.valid_name), 2, max_samples=8000)
    for batch in dataset.create_dict_iterator(output_numpy=True, num_epochs=1):
        assert batch["mixture"].shape == (1, 8000) and batch["lens"][0] == 8000


def test_wrong_speaker_count_and_missing_files_are_clear(prepared, tmp_path):
    cfg, data_dir = prepared
    with pytest.raises(UserError, match="holds 2-speaker mixtures but num_spks is 3"):
        train_dataset(mindrecord_file(data_dir, cfg.train_name), cfg.updated(num_spks=3), 0)
    with pytest.raises(UserError, match="no MindRecord file here; run `python preprocess.py"):
        mindrecord_file(tmp_path, "train.mindrecord")
    with pytest.raises(UserError, match="fewer than batch_size"):
        train_dataset(mindrecord_file(data_dir, cfg.train_name), cfg.updated(segment=30.0), 0)
