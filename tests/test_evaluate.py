"""evaluate.py, export.py and the Ascend 310 path (preprocess_310 -> CPU twin -> postprocess)."""
import csv
import importlib.machinery
import json
import shutil
import subprocess
import sys
import types
from itertools import permutations
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from ascend310_infer.infer_cpu import infer_folder
from checkpoint import build_network
from config import UserError, load_config
from data import mindrecord_file, read_split, segment_starts
from evaluation import (evaluation_protocol, pieces, reassemble, score_utterances,
                        separate_utterances, summarize)
from files_310 import result_utterances
from helpers import TINY_MODEL, script_main, write_310_inputs
from mindir import check_export_target, export_network
from separation import Separator, load_onnx

evaluate_main = script_main("evaluate.py")
postprocess_main = script_main("postprocess.py")

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_MODEL


def utterances_of(cfg):
    """(mixture_ID, mixture, sources) of cfg's test split."""
    return read_split(mindrecord_file(cfg.data_dir, cfg.test_name), cfg.num_spks)


@pytest.fixture(scope="module")
def checkpoint(prepared, tmp_path_factory):
    """A tiny model's weights and the config to read them with: (cfg, ckpt path)."""
    _, data_dir = prepared
    work = tmp_path_factory.mktemp("ckpt")
    cfg = load_config(["--data_dir", str(data_dir), "--results_dir", str(work / "results"),
                       "--export_length", "1.5", *TINY], verbose=False)
    ms.set_seed(11)
    ms.save_checkpoint(build_network(cfg.group("model")), str(work / "tiny.ckpt"))
    return cfg.updated(ckpt_path=str(work / "tiny.ckpt")), work / "tiny.ckpt"


def reference_si_snr(estimate, reference):
    estimate, reference = estimate - estimate.mean(), reference - reference.mean()
    target = np.dot(estimate, reference) / np.dot(reference, reference) * reference
    return 10 * np.log10(np.sum(target ** 2) / np.sum((estimate - target) ** 2))


def test_pieces_cover_the_utterance_consecutively():
    assert pieces(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert pieces(8, 4) == [(0, 4), (4, 4)]
    assert pieces(3, 4) == [(0, 3)]


def test_reassemble_matches_speakers_piece_by_piece():
    rng = np.random.default_rng(0)
    sources = rng.standard_normal((2, 10))
    layout = pieces(10, 4)
    outputs = []
    for k, (offset, valid) in enumerate(layout):
        piece = np.zeros((2, 4))
        piece[:, :valid] = sources[:, offset:offset + valid] * (k + 1)
        outputs.append(piece[::-1] if k % 2 else piece)  # every other piece in swapped order
    estimates = reassemble(outputs, layout, sources)
    np.testing.assert_allclose(estimates[:, 4:8], sources[:, 4:8] * 2)
    np.testing.assert_allclose(estimates[:, 8:], sources[:, 8:] * 3)


def zoo_protocol_reference(utterances, separate, segment):
    """The model zoo's scoring written out on its own: (segments, mean SI-SNRi, dropped utterances)."""
    improvements, dropped = [], 0
    for mixture, sources in utterances:
        whole_segments = len(mixture) // segment
        if whole_segments == 0:
            dropped += 1
            continue
        starts = [k * segment for k in range(whole_segments)]
        if whole_segments * segment < len(mixture):
            starts.append(len(mixture) - segment)  # the tail, overlapping the segment before it
        for start in starts:
            mix, refs = mixture[start:start + segment], sources[:, start:start + segment]
            est = separate(mix)
            best = max(np.mean([reference_si_snr(est[p[j]], refs[j]) for j in range(2)])
                       for p in permutations(range(2)))
            improvements.append(best - np.mean([reference_si_snr(mix, refs[j]) for j in range(2)]))
    return len(improvements), float(np.mean(improvements)), dropped


def test_zoo_protocol_scores_segments_as_the_model_zoo_does():
    rate, segment = 8000, 32000
    rng = np.random.default_rng(3)
    kernel = np.hanning(9) / np.hanning(9).sum()
    utterances = []
    for seconds in (3.0, 8.0, 9.5):  # dropped; two whole segments; two and the overlapping tail
        length = int(seconds * rate)
        low = np.convolve(rng.standard_normal(length), kernel, mode="same")
        high = rng.standard_normal(length) - np.convolve(rng.standard_normal(length), kernel, mode="same")
        sources = np.stack([low, high])
        utterances.append((f"utt{seconds:g}", sources.sum(0), sources))

    def separate(mixture):  # a crude filter "model" whose output order is the reverse of the sources'
        smooth = np.convolve(mixture, kernel, mode="same")
        return np.stack([mixture - smooth, smooth])

    rows = score_utterances(separate_utterances(utterances, separate, "zoo", segment), False, 1, rate)
    summary = summarize(rows, "zoo", segment, rate, len(utterances))
    count, si_snri, dropped = zoo_protocol_reference([(m, s) for _, m, s in utterances], separate, segment)
    assert (summary["segments"], summary["dropped_utterances"], summary["utterances"]) == (count, dropped, 2)
    assert (count, dropped) == (5, 1)
    assert [(r["mixture_ID"], r["start"]) for r in rows] == [("utt8", 0), ("utt8", 32000), ("utt9.5", 0),
                                                              ("utt9.5", 32000), ("utt9.5", 44000)]
    assert summary["si_snri"] == pytest.approx(si_snri, abs=1e-6)
    assert summary["protocol"] == "model zoo: 4-s segments"


@pytest.mark.parametrize("argv, expected", [([], ("whole", 0)), (["--eval_segment", "2"], ("pieces", 16000)),
                                            (["--eval_protocol", "pieces"], ("pieces", 32000)),
                                            (["--eval_protocol", "zoo"], ("zoo", 32000)),
                                            (["--eval_protocol", "zoo", "--eval_segment", "3"], ("zoo", 24000))])
def test_eval_protocol_and_segment_choose_the_protocol(argv, expected):
    cfg = load_config(argv, verbose=False)
    assert evaluation_protocol(cfg.eval_protocol, cfg.samples("eval_segment"), cfg.sample_rate) == expected


def test_whole_utterance_scores_match_an_independent_computation(checkpoint, prepared, librimix):
    cfg, ckpt = checkpoint
    evaluate_main(["--config_path", "/dev/null", "--ckpt_path", str(ckpt), "--data_dir", cfg.data_dir,
                   "--results_dir", cfg.results_dir, "--cal_sdr", *TINY])
    with open(Path(cfg.results_dir) / "per_utterance.csv", newline="") as f:
        rows = {r["mixture_ID"]: r for r in csv.DictReader(f)}
    columns = ["mixture_ID", "seconds", "SI-SNR", "SI-SNRi", "SDR", "SDRi"]
    assert len(rows) == 3 and list(next(iter(rows.values()))) == columns
    net = build_network(cfg.group("model"))
    ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)))
    separate = Separator(net)
    import soundfile as sf
    for mixture_id, row in rows.items():
        mix = sf.read(librimix / "test" / "mix_clean" / f"{mixture_id}.wav", dtype="float32")[0]
        src = [sf.read(librimix / "test" / f"s{k}" / f"{mixture_id}.wav", dtype="float32")[0] for k in (1, 2)]
        est = separate(mix)
        best = max(permutations(range(2)), key=lambda p: sum(reference_si_snr(est[p[j]], src[j]) for j in range(2)))
        snr = [reference_si_snr(est[best[j]], src[j]) for j in range(2)]
        improvement = [snr[j] - reference_si_snr(mix, src[j]) for j in range(2)]
        assert float(row["SI-SNR"]) == pytest.approx(np.mean(snr), abs=1e-3)
        assert float(row["SI-SNRi"]) == pytest.approx(np.mean(improvement), abs=1e-3)
    summary = json.loads((Path(cfg.results_dir) / "summary.json").read_text())
    assert summary["si_snri"] == pytest.approx(np.mean([float(r["SI-SNRi"]) for r in rows.values()]))
    assert summary["sdri"] == pytest.approx(np.mean([float(r["SDRi"]) for r in rows.values()]))


@pytest.mark.parametrize("target, protocol", [("Ascend", "whole"), ("GPU", "zoo"), ("CPU", "whole")])
def test_evaluation_on_ascend_and_gpu_says_first_how_many_shapes_it_compiles(checkpoint, prepared, tmp_path,
                                                                            monkeypatch, capsys, target, protocol):
    """evaluate.py on Ascend (DynamicRNN: kernels per input shape) or GPU names, before it starts, the
    input shapes its protocol feeds the network: one per distinct test length whole, one otherwise."""
    import device
    cfg, ckpt = checkpoint
    lengths = [len(mixture) for _, mixture, _ in utterances_of(cfg)]
    assert len(set(lengths)) > 1
    real_setup = device.setup_device
    # the CPU does the work; the device is what evaluate.py was told it runs on
    monkeypatch.setitem(evaluate_main.__globals__, "setup_device", lambda **kw: (real_setup(**kw), target)[1])
    evaluate_main(["--ckpt_path", str(ckpt), "--data_dir", str(prepared[1]), "--results_dir", str(tmp_path / "r"),
                   "--eval_protocol", protocol, "--eval_segment", "0.5" if protocol != "whole" else "0", *TINY])
    out = capsys.readouterr().out
    label = {"whole": "whole utterances", "pieces": "0.5-s pieces", "zoo": "model zoo: 0.5-s segments"}[protocol]
    shapes = len(set(lengths)) if protocol == "whole" else 1
    line = (f"on {target}, kernels are built for each input shape: {shapes} for {label}; --eval_protocol pieces "
            f"(or zoo) needs one\n")
    assert (line in out) == (target != "CPU") and "kernels are built" not in out.replace(line, "")


def test_mindir_export_gives_the_checkpointed_output(checkpoint, tmp_path):
    cfg, ckpt = checkpoint
    net = build_network(cfg.group("model"))
    ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)))
    path, _ = export_network(net, str(tmp_path / "tiny"), "MINDIR", 12000, "cpu")
    mixture = np.random.default_rng(1).standard_normal((1, 12000)).astype(np.float32)
    exported = nn.GraphCell(ms.load(str(path)))(ms.Tensor(mixture)).asnumpy()
    # the exported graph runs fused CPU kernels, which sum in another order than eager kernels
    np.testing.assert_allclose(exported, Separator(net)(mixture[0])[None], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config", ["default", "demo", "tiny", "cgln", "ln", "causal"])
def test_onnx_export_runs_in_onnxruntime_as_in_mindspore(checkpoint, tmp_path, config):
    """The exported ONNX model, run by onnxruntime, gives MindSpore's output (default, demo and the
    tests' tiny model); evaluate.py --onnx scores it in pieces of its length as evaluate.py scores the
    checkpoint in pieces of that length; an earlier checkpoint's weights export as they are."""
    cfg, ckpt = checkpoint
    argv = {"default": [], "demo": ["--config_path", str(ROOT / "scripts" / "demo_config.yaml")], "tiny": TINY,
            "cgln": TINY + ["--norm", "cgln"], "ln": TINY + ["--norm", "ln", "--bidirectional", "false"],
            "causal": ["--config_path", str(ROOT / "scripts" / "demo_causal_config.yaml")]}[config]
    model_cfg = load_config(argv, verbose=False)
    ms.set_seed(4)
    net = build_network(model_cfg.group("model"))
    if config == "tiny":
        ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)))
    length = 4000
    path, _ = export_network(net, str(tmp_path / "model"), "ONNX", length, "cpu")
    run, exported_length = load_onnx(path)
    mixture = np.random.default_rng(2).standard_normal((1, length)).astype(np.float32)
    net.set_train(False)
    np.testing.assert_allclose(run(mixture), net(ms.Tensor(mixture)).asnumpy(), rtol=1e-4, atol=1e-4)
    assert exported_length == length
    if config != "tiny":
        return
    evaluate_main(["--config_path", "/dev/null", "--onnx", str(path), "--data_dir", cfg.data_dir,
                   "--results_dir", str(tmp_path / "onnx"), *TINY])
    evaluate_main(["--config_path", "/dev/null", "--ckpt_path", str(ckpt), "--data_dir", cfg.data_dir,
                   "--results_dir", str(tmp_path / "ckpt"), "--eval_segment", str(length / cfg.sample_rate), *TINY])
    onnx, mindspore = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("onnx", "ckpt"))
    assert onnx["protocol"] == mindspore["protocol"] == "0.5-s pieces"
    assert onnx["si_snri"] == pytest.approx(mindspore["si_snri"], abs=0.01)


def test_layers_rewritten_for_onnx_compute_the_same(checkpoint):
    """set_onnx_export runs each LSTM direction as its own kernel call and cLN's running sums as
    matrix products: the same output, from the same checkpoint."""
    cfg, ckpt = checkpoint
    net = build_network(load_config(TINY + ["--norm", "cgln"], verbose=False).group("model"))
    ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)))
    net.set_train(False)
    mixture = ms.Tensor(np.random.default_rng(3).standard_normal((2, 3000)).astype(np.float32))
    fused = net(mixture).asnumpy()
    net.set_onnx_export(True)
    np.testing.assert_allclose(net(mixture).asnumpy(), fused, rtol=0, atol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--rnn_type", "GRU"], "cannot export GRU layers to ONNX .*rnn_type LSTM, or --file_format MINDIR"),
    (["--rnn_type", "RNN"], "cannot export RNN layers to ONNX"),
])
def test_what_onnx_cannot_take_is_a_one_line_error(tmp_path, argv, message):
    net = build_network(load_config(TINY + argv, verbose=False).group("model"))
    with pytest.raises(UserError, match=message) as err:
        export_network(net, str(tmp_path / "tiny"), "ONNX", 4000, "cpu")
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_air_says_clearly_why_not(checkpoint, tmp_path):
    cfg, ckpt = checkpoint
    with pytest.raises(UserError, match="AIR export needs an Ascend device"):
        check_export_target("AIR", "ascend", "CPU")
    with pytest.raises(UserError, match="AIR is for Ascend only: pass --export_target ascend"):
        check_export_target("AIR", "cpu", "Ascend")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def infer_310(checkpoint, tmp_path_factory):
    """preprocess_310 -> export -> CPU twin of the 310 app: (cfg, infer_dir)."""
    cfg, ckpt = checkpoint
    infer_dir = tmp_path_factory.mktemp("infer") / "infer_310"
    write_310_inputs(cfg, infer_dir)
    # run again over a user's file and a killed run's leftover: the file stays, the leftover goes
    (infer_dir / "my_notes.txt").write_text("mine")
    (infer_dir / ".preprocess_310.999999999.partial" / "input").mkdir(parents=True)
    manifest = write_310_inputs(cfg, infer_dir)
    assert sorted(p.name for p in infer_dir.iterdir()) == ["input", "manifest.json", "my_notes.txt", "references"]
    net = build_network(cfg.group("model"))
    ms.load_param_into_net(net, ms.load_checkpoint(str(ckpt)))
    mindir, _ = export_network(net, str(infer_dir.parent / "tiny"), "MINDIR", cfg.samples("export_length"), "cpu")
    assert infer_folder(mindir, infer_dir / "input", infer_dir / "result_Files") == len(manifest["pieces"])
    return cfg, infer_dir


def test_310_path_equals_evaluate_in_pieces(infer_310, checkpoint, capsys):
    cfg, infer_dir = infer_310
    manifest = json.loads((infer_dir / "manifest.json").read_text())
    assert sorted(manifest["utterances"]) == sorted(i for i, _, _ in utterances_of(cfg))
    for piece in manifest["pieces"]:
        assert (infer_dir / "input" / piece["bin"]).stat().st_size == 4 * cfg.samples("export_length")
    rows_310 = score_utterances(result_utterances(infer_dir, infer_dir / "result_Files"), False, 1, 8000)
    net = build_network(cfg.group("model"))
    ms.load_param_into_net(net, ms.load_checkpoint(cfg.ckpt_path))
    pieces_of = separate_utterances(utterances_of(cfg), Separator(net), "pieces", cfg.samples("export_length"))
    rows_eval = score_utterances(pieces_of, False, 1, 8000)
    assert [r["mixture_ID"] for r in rows_310] == [r["mixture_ID"] for r in rows_eval]
    for a, b in zip(rows_310, rows_eval):
        assert a["SI-SNRi"] == pytest.approx(b["SI-SNRi"], abs=0.01)
    postprocess_main(["--config_path", "/dev/null", "--infer_dir", str(infer_dir),
                      "--results_dir", str(infer_dir / "results")])
    expected = np.mean([r["SI-SNRi"] for r in rows_eval])
    assert f"Average SISNR improvement: {expected:.2f}" in capsys.readouterr().out


def fake_mindspore_lite(built):
    """mindspore_lite's documented Python API (Context, Model.build_from_file, get_inputs, predict,
    Tensor.set_data_from_numpy / get_data_to_numpy), run by MindSpore underneath: Lite cannot be
    installed here, so this checks how the CPU twin drives it."""
    lite = types.ModuleType("mindspore_lite")
    lite.__spec__ = importlib.machinery.ModuleSpec("mindspore_lite", None)
    lite.ModelType = types.SimpleNamespace(MINDIR="MINDIR")

    class Context:
        def __init__(self):
            self.target = []

    class Tensor:
        def set_data_from_numpy(self, array):
            self.array = array

        def get_data_to_numpy(self):
            return self.array

    class Model:
        def build_from_file(self, path, model_type, context):
            assert model_type == "MINDIR" and context.target == ["cpu"]
            self.graph = nn.GraphCell(ms.load(path))
            built.append(path)

        def get_inputs(self):
            return [Tensor()]

        def predict(self, inputs):
            output = Tensor()
            output.set_data_from_numpy(self.graph(ms.Tensor(inputs[0].array)).asnumpy())
            return [output]

    lite.Context, lite.Model = Context, Model
    return lite


def test_cpu_twin_runs_mindspore_lite_when_installed_and_writes_the_same_files(infer_310, tmp_path,
                                                                               monkeypatch, capsys):
    _, infer_dir = infer_310
    mindir = next(infer_dir.parent.glob("tiny*.mindir"))
    built = []
    monkeypatch.setitem(sys.modules, "mindspore_lite", fake_mindspore_lite(built))
    infer_folder(mindir, infer_dir / "input", tmp_path / "lite")
    assert built == [str(mindir)] and "with MindSpore Lite on CPU" in capsys.readouterr().out
    expected = sorted((infer_dir / "result_Files").iterdir())
    assert [p.name for p in sorted((tmp_path / "lite").iterdir())] == [p.name for p in expected]
    for path in expected:
        assert (tmp_path / "lite" / path.name).read_bytes() == path.read_bytes()


def test_310_path_and_evaluate_score_the_zoo_protocol_alike(infer_310, checkpoint, tmp_path, capsys):
    cfg, infer_dir = infer_310
    zoo = cfg.updated(eval_protocol="zoo", results_dir=str(tmp_path / "eval"))
    zoo_dir = tmp_path / "infer_zoo"
    manifest = write_310_inputs(zoo, zoo_dir)
    shutil.copy(next(infer_dir.parent.glob("tiny*.mindir")), tmp_path / "tiny.mindir")
    infer_folder(tmp_path / "tiny.mindir", zoo_dir / "input", zoo_dir / "result_Files")
    postprocess_main(["--config_path", "/dev/null", "--infer_dir", str(zoo_dir), "--results_dir",
                      str(zoo_dir / "results")])
    summary_310 = json.loads((zoo_dir / "results" / "summary.json").read_text())

    evaluate_main(["--config_path", "/dev/null", "--ckpt_path", cfg.ckpt_path, "--data_dir", cfg.data_dir,
                   "--results_dir", zoo.results_dir, "--eval_protocol", "zoo", "--eval_segment",
                   str(cfg.export_length), *TINY])
    summary_eval = json.loads((tmp_path / "eval" / "summary.json").read_text())
    net = build_network(cfg.group("model"))
    ms.load_param_into_net(net, ms.load_checkpoint(cfg.ckpt_path))
    test_split = [(m, s) for _, m, s in utterances_of(cfg)]
    count, si_snri, dropped = zoo_protocol_reference(test_split, Separator(net), cfg.samples("export_length"))
    assert len(manifest["pieces"]) == count == summary_eval["segments"] == summary_310["segments"]
    assert summary_eval["dropped_utterances"] == summary_310["dropped_utterances"] == dropped
    assert count > len(test_split) - dropped  # some utterance gave several segments
    assert summary_eval["si_snri"] == pytest.approx(si_snri, abs=1e-3)
    assert summary_310["si_snri"] == pytest.approx(si_snri, abs=0.01)
    with open(tmp_path / "eval" / "per_segment.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == count
    assert f"{count} segments of" in capsys.readouterr().out


@pytest.mark.parametrize("damage, message", [
    (lambda d: next((d / "result_Files").iterdir()).unlink(), "missing result for input"),
    (lambda d: np.zeros(7, np.float32).tofile(sorted((d / "result_Files").iterdir())[0]), "7 values, expected"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not a preprocess_310.py manifest"),
    (lambda d: next((d / "references").iterdir()).unlink(), "missing reference"),
])
def test_damaged_310_results_are_clear_errors(infer_310, tmp_path, damage, message):
    _, infer_dir = infer_310
    copy = tmp_path / "copy"
    shutil.copytree(infer_dir, copy)
    damage(copy)
    with pytest.raises(UserError, match=message) as err:
        list(result_utterances(copy, copy / "result_Files"))
    assert "\n" not in str(err.value)


def test_cpu_twin_refuses_inputs_of_another_length(infer_310, tmp_path):
    _, infer_dir = infer_310
    (tmp_path / "input").mkdir()
    np.zeros((1, 5000), np.float32).tofile(tmp_path / "input" / "000000.bin")
    with pytest.raises(UserError, match="does not take \\[1, 5000\\] inputs"):
        infer_folder(infer_dir.parent / "tiny.mindir", tmp_path / "input", tmp_path / "out")
    with pytest.raises(UserError, match="no .bin inputs"):
        infer_folder(infer_dir.parent / "tiny.mindir", tmp_path / "nothing", tmp_path / "out")


@pytest.mark.parametrize("make_ckpt, message", [
    (lambda p: None, "no such checkpoint file"),
    (lambda p: p.write_bytes(b"\x00garbage"), "not a readable MindSpore checkpoint"),
    (lambda p: ms.save_checkpoint(build_network(load_config(TINY + ["--num_layers", "2"], verbose=False).group("model")), str(p)),
     "which the configured model lacks"),
    (lambda p: ms.save_checkpoint(build_network(load_config(TINY + ["--bn_channels", "8"], verbose=False).group("model")), str(p)),
     "does not fit the configured model"),
])
def test_bad_checkpoints_are_one_line_errors(prepared, tmp_path, make_ckpt, message):
    _, data_dir = prepared
    ckpt = tmp_path / "model.ckpt"
    make_ckpt(ckpt)
    result = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--ckpt_path", str(ckpt),
                             "--data_dir", str(data_dir), "--results_dir", str(tmp_path / "r"), *TINY],
                            capture_output=True, text=True)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not (tmp_path / "r").exists()


def test_preprocess_310_replaces_only_its_own_files(prepared, tmp_path):
    """A second run replaces the first's input/, references/ and manifest.json and nothing else; a
    folder of the user's named input/ (without preprocess_310.py's marker) is refused and kept."""
    cfg, data_dir = prepared
    cfg = load_config(["--data_dir", str(data_dir), *TINY_MODEL, "--export_length", "1"], verbose=False)
    infer = tmp_path / "infer"
    first = write_310_inputs(cfg, infer)
    (infer / "notes.txt").write_text("the user's")
    again = write_310_inputs(cfg, infer)
    assert again == first and (infer / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in (infer / "input").glob("*.bin")) == [p["bin"] for p in first["pieces"]]
    (infer / "input" / "mine.bin").write_bytes(b"the user's")
    (infer / "input" / ".written_by_preprocess_310").unlink()
    with pytest.raises(UserError, match=f"^{infer / 'input'} exists and was not written by preprocess_310.py"):
        write_310_inputs(cfg, infer)
    assert (infer / "input" / "mine.bin").read_bytes() == b"the user's"


def test_the_zoo_scores_whole_segments_and_the_last_one_and_trains_on_half_overlapping_ones():
    """One rule (data.segment_starts) for both: length 10, segments of 4."""
    assert segment_starts(10, 4, 4) == [0, 4, 6]       # scored: consecutive, then the last 4 samples
    assert segment_starts(10, 4, 2) == [0, 2, 4, 6, 6]  # trained on: every half segment, then the last
    assert segment_starts(8, 4, 4) == [0, 4] and segment_starts(3, 4, 4) == []
