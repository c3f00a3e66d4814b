"""Export in the form of the device that runs the model: the cpu form's LSTMs are LSTM nodes, the
ascend form's DynamicRNN nodes (float16); every exported graph is checked against its target's
documented operators, and the ascend form, run off Ascend through DynamicRNN's documented function,
computes the checkpoint's function."""
import json
import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

import layers
import mindir
from checkpoint import build_network
from config import UserError, load_config
from helpers import TINY_MODEL, script_main
from layers import AscendLSTM, emulate_dynamic_rnn
from mindir import export_network
from separation import load_mindir

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"default": [], "demo": ["--config_path", str(ROOT / "scripts" / "demo_config.yaml")], "tiny": TINY_MODEL}
export_main = script_main("export.py")


def model_settings(name):
    return load_config(MODELS[name], verbose=False).group("model")


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_cpu_form_passes_the_cpu_check(model, tmp_path):
    path, summary = export_network(build_network(model_settings(model), "CPU"), str(tmp_path / model), "MINDIR",
                                   4000, "cpu")
    ops_used = mindir.operators(path)
    assert "LSTM" in ops_used and "DynamicRNN" not in ops_used
    assert summary == (f"{path}: {len(ops_used)} operators ({sum(ops_used.values())} calls) checked for CPU: "
                       f"all documented for CPU")
    assert mindir.lstm_form(path) == "cpu/gpu"


@pytest.mark.parametrize("model", ["demo", "tiny"])
def test_ascend_form_holds_dynamic_rnn_and_passes_the_ascend_check(model, tmp_path):
    settings = model_settings(model)
    path, summary = export_network(build_network(settings, "Ascend"), str(tmp_path / model), "MINDIR", 4000,
                                   "ascend")
    ops_used = mindir.operators(path)
    assert "LSTM" not in ops_used
    # one DynamicRNN per direction of every intra- and inter-chunk RNN
    assert ops_used["DynamicRNN"] == settings["num_layers"] * 2 * 2
    assert summary.endswith("checked for Ascend: all documented for Ascend and mapped by MindSpore Lite's "
                            "Ascend converter")
    assert mindir.lstm_form(path) == "ascend"


def test_the_cpu_form_is_refused_for_ascend_for_both_reasons(tmp_path):
    """The CPU form's LSTM fails for Ascend on both counts: MindSpore documents LSTM for GPU and CPU
    only, and Lite's Ascend converter does not map it. Dropping LSTM from either source changes the
    message, so this fails."""
    with pytest.raises(UserError) as err:
        export_network(build_network(model_settings("tiny"), "CPU"), str(tmp_path / "tiny"), "MINDIR", 4000,
                       "ascend")
    message = str(err.value)
    assert message == (f"{tmp_path / 'tiny.mindir'}: operator LSTM cannot run on Ascend: MindSpore documents it "
                       f"for GPU, CPU only; MindSpore Lite's Ascend converter does not take it from a MindIR "
                       f"({mindir.ASCEND_CONVERTER['LSTM'][1]}); nothing was written")
    assert "no op adapter" in message and "rnn_declare.cc" in message and not list(tmp_path.iterdir())


class OneLSTM(nn.Cell):
    """A hand-made graph: one LSTM primitive between two Adds."""

    def __init__(self):
        super().__init__()
        self.lstm = ops.LSTM(4, 3, 1, True, False, 0.0)

    def construct(self, x):
        state = ops.zeros((1, x.shape[1], 3), ms.float32)
        weights = ops.ones((4 * 3 * (4 + 3) + 4 * 3, 1, 1), ms.float32)
        return self.lstm(x + 1, state, state, weights)[0] + 1


def test_a_hand_made_lstm_graph_fails_for_ascend_and_passes_for_cpu(tmp_path):
    ms.export(OneLSTM(), ms.Tensor(np.zeros((5, 2, 4), np.float32)), file_name=str(tmp_path / "one"),
              file_format="MINDIR")
    path = tmp_path / "one.mindir"
    assert set(mindir.operators(path)) == {"Add", "LSTM"}
    assert mindir.check_operators(path, "cpu").startswith(f"{path}: 2 operators (3 calls) checked for CPU")
    with pytest.raises(UserError, match="operator LSTM cannot run on Ascend") as err:
        mindir.check_operators(path, "ascend")
    assert "\n" not in str(err.value)


def test_documented_platforms_are_read_from_the_installed_primitives():
    assert mindir.documented_platforms("LSTM") == ("GPU", "CPU")
    assert mindir.documented_platforms("DynamicRNN") == ("Ascend",)
    # a generated primitive whose docstring only refers to its function
    assert mindir.documented_platforms("SumExt") == ("Ascend", "GPU", "CPU")
    assert mindir.documented_platforms("Divs") is None
    assert mindir.ASCEND_CONVERTER["LSTM"][0] is False and mindir.ASCEND_CONVERTER["DynamicRNN"][0] is True


def test_the_mindir_route_cites_mapper_for_org_mindir_only_for_what_it_maps():
    """For a MindIR, Lite's ACL pass maps Transpose and MatMul (MapperForOrgMindIR's list); Cast, Concat,
    Reshape, StridedSlice and BroadcastTo go to graph-engine op adapters by name, as every other operator."""
    mapped = {name for name, (_, source) in mindir.ASCEND_CONVERTER.items() if "adapter/acl/mapper/" in source}
    assert mapped == {"MatMul", "Transpose"}
    for name in ("Cast", "Concat", "Reshape", "StridedSlice", "BroadcastTo", "DynamicRNN"):
        assert mindir.ASCEND_CONVERTER[name][1].startswith("mindspore 2.x: mindspore/ccsrc/transform/graph_ir/op_declare/")


def onnx_export(tmp_path, settings):
    ms.set_seed(3)
    path, summary = export_network(build_network(settings, "CPU"), str(tmp_path / "model"), "ONNX", 4000, "cpu")
    return path, summary


@pytest.mark.parametrize("model, norm", [("tiny", "gln"), ("tiny", "cgln"), ("tiny", "ln"), ("demo", "gln")])
def test_every_onnx_operator_of_the_export_converts_for_ascend(tmp_path, model, norm):
    """The ONNX route: every operator the project's ONNX exports hold (each norm) is in ONNX_ASCEND_CONVERTER
    (an ONNX LSTM becomes CommonLSTM), and export.py says so."""
    import onnx
    path, summary = onnx_export(tmp_path, {**model_settings(model), "norm": norm})
    ops_used = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "LSTM" in ops_used and ops_used <= set(mindir.ONNX_ASCEND_CONVERTER)
    assert summary == (f"{path}: {len(ops_used)} ONNX operators ({len(onnx.load(str(path)).graph.node)} nodes) "
                       f"checked for Ascend (scripts/convert_310.sh): all read by MindSpore Lite's ONNX parsers and "
                       f"taken by its Ascend converter")
    assert "CommonLSTM" in mindir.ONNX_ASCEND_CONVERTER["LSTM"]


def test_an_onnx_operator_the_table_does_not_know_is_a_note_at_export_and_an_error_when_checked(
        tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.delitem(mindir.ONNX_ASCEND_CONVERTER, "LSTM")
    path, summary = onnx_export(tmp_path, model_settings("tiny"))
    assert summary == (f"note: {path}: ONNX operator LSTM is not in mindir.ONNX_ASCEND_CONVERTER, the operators read "
                       f"in MindSpore Lite's ONNX parsers and Ascend converter: it may not convert for Ascend")
    with pytest.raises(UserError, match="ONNX operator LSTM is not in mindir.ONNX_ASCEND_CONVERTER"):
        export_main(["--check_onnx", str(path)])
    with pytest.raises(UserError, match=f"^{tmp_path / 'no.onnx'}: no such ONNX file"):
        export_main(["--check_onnx", str(tmp_path / "no.onnx")])


def test_a_model_converted_by_converter_lite_passes_the_ascend_check_as_converted():
    from collections import Counter
    assert mindir.converted_for_ascend(Counter({"Custom": 1}))
    assert not mindir.converted_for_ascend(Counter({"Custom": 1, "LSTM": 4}))


STAND_IN_CONVERTER = """#!/bin/bash
echo "$@" > {calls}
{body}
"""


def convert(tmp_path, body, *argv, converter=True):
    """bash scripts/convert_310.sh argv... with a stand-in converter_lite: (result, its arguments or None)."""
    calls = tmp_path / "calls.txt"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("LITE_HOME", None)
    if converter:
        tool = tmp_path / "converter_lite"
        tool.write_text(STAND_IN_CONVERTER.format(calls=calls, body=body))
        tool.chmod(0o755)
        env["CONVERTER_LITE"] = str(tool)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "convert_310.sh"), *argv], capture_output=True,
                            text=True, env=env)
    return result, calls.read_text().split() if calls.exists() else None


WRITES_A_MODEL = """for a in "$@"; do case $a in --outputFile=*) out=${a#--outputFile=};; --configFile=*) cp "${a#--configFile=}" %s;; esac; done
printf 'converted' > "$out.mindir"
"""


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return onnx_export(tmp_path_factory.mktemp("onnx"), model_settings("tiny"))[0]


def test_convert_310_runs_converter_lite_for_ascend_and_writes_the_model_whole(tmp_path, tiny_onnx):
    onnx_path = tiny_onnx
    (tmp_path / "out").mkdir()
    result, arguments = convert(tmp_path, WRITES_A_MODEL % (tmp_path / "config.txt"), str(onnx_path),
                                str(tmp_path / "out" / "dprnn_ascend"), "enforce_fp16")
    assert result.returncode == 0, result.stderr
    assert f"checked for Ascend (scripts/convert_310.sh)" in result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"converted {onnx_path} for Ascend (enforce_fp16) to "
                                                     f"{tmp_path / 'out' / 'dprnn_ascend.mindir'}")
    assert arguments[0] == "--fmk=ONNX" and f"--modelFile={onnx_path}" in arguments
    assert {"--saveType=MINDIR", "--optimize=ascend_oriented"} <= set(arguments)
    assert (tmp_path / "config.txt").read_text() == "[ascend_context]\nprecision_mode=enforce_fp16\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dprnn_ascend.mindir"]
    assert (tmp_path / "out" / "dprnn_ascend.mindir").read_text() == "converted"


@pytest.mark.parametrize("case, message", [
    ("no converter", "error: MindSpore Lite's converter_lite is not installed: set LITE_HOME to the unpacked "
                     "MindSpore Lite cloud-side inference package"),
    ("no onnx", "error: {tmp}/missing.onnx: no such ONNX file (make one with python export.py"),
    ("converter fails", "error: converter_lite could not convert {onnx}: ERROR [converter.cc:42] Convert failed: "
                        "op CommonLSTM not supported"),
])
def test_what_convert_310_lacks_is_one_line_and_leaves_nothing(tmp_path, tiny_onnx, case, message):
    onnx_path = tiny_onnx
    (tmp_path / "out").mkdir()
    source = tmp_path / "missing.onnx" if case == "no onnx" else onnx_path
    result, _ = convert(tmp_path, 'echo "ERROR [converter.cc:42] Convert failed: op CommonLSTM not supported"; exit 1',
                        str(source), str(tmp_path / "out" / "dprnn_ascend"), converter=case != "no converter")
    assert result.returncode == 1
    assert result.stderr.startswith(message.format(tmp=tmp_path, onnx=onnx_path)), result.stderr
    assert result.stderr.count("\n") == 1 and list((tmp_path / "out").iterdir()) == []


def test_an_operator_the_table_does_not_know_is_refused_for_ascend(monkeypatch):
    monkeypatch.delitem(mindir.ASCEND_CONVERTER, "Sqrt")
    assert mindir.problems("Sqrt", "Ascend") == ["it is not in mindir.ASCEND_CONVERTER, the operators read in "
                                                 "MindSpore Lite's Ascend converter"]
    assert mindir.problems("Sqrt", "CPU") == []


def ascend_and_cpu_outputs(settings, mixture, seed=5):
    """The same weights as the cpu form and as the ascend form run through DynamicRNNOnCPU."""
    ms.set_seed(seed)
    cpu = build_network(settings, "CPU")
    ascend = emulate_dynamic_rnn(build_network(settings, "Ascend"))
    ms.load_param_into_net(ascend, {p.name: ms.Parameter(p.asnumpy(), p.name) for p in cpu.get_parameters()},
                           strict_load=True)
    cpu.set_train(False)
    ascend.set_train(False)
    return cpu(ms.Tensor(mixture)).asnumpy(), ascend(ms.Tensor(mixture)).asnumpy()


# float16 LSTMs against float32 ones, same weights and input: 66 dB measured on the demo model, 74 dB
# on the tiny one (59 dB on the default model); a wrong gate order gives 0.3-0.5 dB
FLOAT16_BOUND_DB = 45


@pytest.mark.parametrize("model", ["demo", "tiny"])
def test_ascend_form_computes_the_cpu_forms_function_within_float16(pynative, model):
    mixture = 0.1 * np.random.default_rng(0).standard_normal((1, 6000)).astype(np.float32)
    cpu, ascend = ascend_and_cpu_outputs(model_settings(model), mixture)
    assert snr_db(cpu, ascend) > FLOAT16_BOUND_DB
    assert not np.array_equal(cpu, ascend)  # float16 arithmetic really ran


def test_a_wrong_gate_order_fails_the_float16_bound(pynative, monkeypatch):
    monkeypatch.setattr(AscendLSTM, "_gates_ijfo", lambda self, t: t)  # nn.LSTM's i, f, g, o as they are
    mixture = 0.1 * np.random.default_rng(0).standard_normal((1, 6000)).astype(np.float32)
    cpu, ascend = ascend_and_cpu_outputs(model_settings("demo"), mixture)
    assert snr_db(cpu, ascend) < 10


def test_dynamic_rnn_on_cpu_follows_the_documented_equations(pynative):
    """One step by hand: gates i, j, f, o in the documented order, c = f*c0 + i*j, h = o*tanh(c)."""
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 2, 2))
    w, b = rng.standard_normal((5, 8)), rng.standard_normal(8)
    y, h, c = layers.DynamicRNNOnCPU()(*(ms.Tensor(v.astype(np.float16)) for v in (x, w, b)), None,
                                       ms.Tensor(h0.astype(np.float16)), ms.Tensor(c0.astype(np.float16)))

    def f16(v):
        return v.astype(np.float16).astype(np.float64)

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))
    gates = np.concatenate([f16(x[0]), f16(h0[0])], axis=1) @ f16(w) + f16(b)
    i, j, f, o = np.split(gates, 4, axis=1)
    c_expected = sigmoid(f) * f16(c0[0]) + sigmoid(i) * np.tanh(j)
    h_expected = sigmoid(o) * np.tanh(c_expected)
    assert y.dtype == ms.float16 and c.dtype == ms.float16
    np.testing.assert_allclose(c.asnumpy()[0], c_expected, atol=2e-3)
    np.testing.assert_allclose(y.asnumpy()[0], h_expected, atol=2e-3)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    work = tmp_path_factory.mktemp("export_ckpt")
    from checkpoint import model_args
    cfg = load_config(TINY_MODEL, verbose=False)
    ms.set_seed(2)
    ms.save_checkpoint(build_network(cfg.group("model")), str(work / "tiny.ckpt"),
                       append_dict={"model_args": model_args(cfg)})
    return work / "tiny.ckpt"


def test_export_py_writes_each_form_and_the_310_path_refuses_the_other(tiny_checkpoint, tmp_path, capsys):
    export_main(["--ckpt_path", str(tiny_checkpoint), "--export_target", "ascend", "--file_name",
                 str(tmp_path / "a")])
    export_main(["--ckpt_path", str(tiny_checkpoint), "--file_name", str(tmp_path / "c")])  # auto: cpu here
    out = capsys.readouterr().out
    assert "checked for Ascend" in out and "checked for CPU" in out
    assert "as MINDIR for ascend to" in out and "as MINDIR for cpu to" in out
    assert mindir.lstm_form(tmp_path / "a.mindir") == "ascend" and mindir.lstm_form(tmp_path / "c.mindir") == "cpu/gpu"
    with pytest.raises(UserError) as err:
        export_main(["--check_mindir", str(tmp_path / "a.mindir"), "--export_target", "cpu"])
    assert str(err.value) == (f"{tmp_path / 'a.mindir'} is the ascend form of the model (its LSTMs are DynamicRNN "
                              f"nodes), not the one CPU runs: python export.py --ckpt_path CKPT --export_target cpu")
    with pytest.raises(UserError, match="is the cpu/gpu form .*, not the one Ascend runs: python export.py "
                                        "--ckpt_path CKPT --export_target ascend$"):
        export_main(["--check_mindir", str(tmp_path / "c.mindir"), "--export_target", "ascend"])


def test_a_file_name_given_with_its_suffix_is_not_given_it_twice(tiny_checkpoint, tmp_path, capsys):
    """`--file_name model.mindir` writes model.mindir (any case of the suffix); and --check_mindir
    with the default export_target checks for this host's device (CPU here), as export does."""
    export_main(["--ckpt_path", str(tiny_checkpoint), "--file_name", str(tmp_path / "model.MINDIR")])
    export_main(["--ckpt_path", str(tiny_checkpoint), "--file_name", str(tmp_path / "other.onnx"),
                 "--file_format", "ONNX"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mindir", "other.onnx"]
    capsys.readouterr()
    export_main(["--check_mindir", str(tmp_path / "model.mindir")])
    assert "checked for CPU" in capsys.readouterr().out


def test_separating_with_the_ascend_form_on_cpu_names_the_export_to_run(tiny_checkpoint, tmp_path):
    export_main(["--ckpt_path", str(tiny_checkpoint), "--export_target", "ascend", "--file_name",
                 str(tmp_path / "a")])
    with pytest.raises(UserError, match="is the ascend form .*, not the one CPU runs: python export.py "
                                        "--ckpt_path CKPT --export_target cpu$"):
        load_mindir(tmp_path / "a.mindir")


def run_script(*argv, cwd):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("argv, message", [
    (["--export_target", "npu"], "error: export_target must be one of auto, cpu, gpu, ascend, got 'npu'"),
    (["--export_target", "ascend", "--file_format", "ONNX"], "error: ONNX export writes the cpu form"),
    (["--file_format", "AIR"], "error: AIR export needs an Ascend device (this run is on CPU)"),
])
def test_export_refusals_are_one_line_and_leave_nothing(tiny_checkpoint, tmp_path, argv, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    result = run_script(str(ROOT / "export.py"), "--ckpt_path", str(tiny_checkpoint), "--file_name",
                        str(out / "model"), *argv, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no rank_0/ or other dump


def test_run_infer_310_refuses_a_mindir_of_the_other_form(tiny_checkpoint, tmp_path):
    export_main(["--ckpt_path", str(tiny_checkpoint), "--export_target", "ascend", "--file_name",
                 str(tmp_path / "a")])
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run_infer_310.sh"), str(tmp_path / "a.mindir"),
                             str(tmp_path / "no_data"), "y", "cpu"], capture_output=True, text=True,
                            env={**os.environ, "INFER_DIR": str(tmp_path / "infer"),
                                 "PYTHON": sys.executable})
    assert result.returncode == 1
    assert f"error: {tmp_path / 'a.mindir'} is the ascend form of the model" in result.stdout + result.stderr
    assert not (tmp_path / "infer" / "input").exists()


def test_bench_fp16_scores_float32_as_evaluate_does_and_float16_close_to_it(tiny_checkpoint, prepared, tmp_path):
    """bench.py fp16: its float32 figure is evaluate.py's in the same pieces (an independent path), and the
    float16 LSTMs move SI-SNRi by little (what the README reports for the demo model)."""
    _, data_dir = prepared
    result = run_script(str(ROOT / "bench.py"), "fp16", "--ckpt_path", str(tiny_checkpoint), "--data_dir",
                        str(data_dir), "--export_length", "0.5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fp16 = json.loads(result.stdout.strip().splitlines()[-1])
    script_main("evaluate.py")(["--ckpt_path", str(tiny_checkpoint), "--data_dir", str(data_dir), "--results_dir",
                                str(tmp_path / "eval"), "--eval_segment", "0.5"])
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["protocol"] == "0.5-s pieces"
    assert fp16["si_snri_float32"] == pytest.approx(summary["si_snri"], abs=1e-3)
    assert fp16["si_snri_float16"] != fp16["si_snri_float32"]
    assert abs(fp16["difference_db"]) < 0.05 and fp16["estimates_snr_db"] > FLOAT16_BOUND_DB
