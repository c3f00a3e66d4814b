"""Exported models: written in the form of the device that runs them (export_network: MindIR, ONNX,
AIR), and what an exported MindIR holds and whether that device can run it.

A MindIR is only as portable as its primitives: the LSTM kernels differ by device (layers.LSTM_FORMS),
so export.py writes one form per target and checks every primitive of the written file against

- the platforms MindSpore documents for it: the "Supported Platforms" of the installed primitive's
  docstring (or of the function it refers to), read at run time;
- for Ascend, MindSpore Lite's Ascend converter (ASCEND_CONVERTER below): a raw MindIR reaches the
  310 through its ACL pass, which fails at Model::Build on an operator it cannot map.
"""
import importlib
import re
from collections import Counter
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn
from mindspore.ops import operations
from mindspore.ops.auto_generate import gen_ops_def, gen_ops_prim
from mindspore.train import mind_ir_pb2

from errors import UserError
from fileio import atomic_path, made_folders

TARGETS = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}  # export_target -> MindSpore's device name

# graph structure, not computation: no kernel runs for these on any device
PLUMBING = frozenset({"Constant", "Depend", "Load", "MakeTuple", "Return", "TupleGetItem", "UpdateState"})

_GE = "mindspore: mindspore/ccsrc/transform/graph_ir/op_declare/"
_ACL = "mindspore-lite: mindspore-lite/tools/converter/adapter/acl/mapper/"
_EXTEND = "mindspore-lite: mindspore-lite/tools/converter/import/convert_extend_ops/"
# The operators the project's networks export to, and how MindSpore Lite's Ascend converter takes
# each from a raw MindIR: an ACL mapper, a rewrite into basic operators before the ACL pass, or a
# graph-engine operator adapter (REG_ADPT_DESC) by the primitive's own name. Read from the sources
# named; an operator not listed here is refused for Ascend until its source has been read.
ASCEND_CONVERTER = {
    "Add": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "BroadcastTo": (True, _ACL + "broadcast_to_mapper.cc"),
    "Cast": (True, _ACL + "cast_mapper.cc"),
    "Concat": (True, _ACL + "concat_mapper.cc"),
    "CumSum": (True, _GE + "selection_ops_declare.cc"),
    "Div": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "DynamicRNN": (True, _GE + "rnn_declare.cc"),
    "ExpandDims": (True, _GE + "array_ops_declare.cc"),
    "MatMul": (True, _ACL + "matmul_fusion_mapper.cc"),
    "Mul": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "Neg": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "LayerNorm": (True, _GE + "nn_norm_ops_declare.cc"),
    "Pad": (True, _GE + "pad_ops_declare.cc"),
    "Pow": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "ReLU": (True, _GE + "nonlinear_fuc_ops_declare.cc"),
    "Reshape": (True, _ACL + "reshape_mapper.cc"),
    "ReverseV2": (True, _GE + "selection_ops_declare.cc"),
    "Sigmoid": (True, _GE + "nonlinear_fuc_ops_declare.cc"),
    "Sqrt": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "StridedSlice": (True, _ACL + "stridedslice_mapper.cc"),
    "Sub": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "SumExt": (True, _EXTEND + "sum_ext.cc"),
    "Tanh": (True, _GE + "nonlinear_fuc_ops_declare.cc"),
    "Transpose": (True, _ACL + "transpose_mapper.cc"),
    # LSTMMapper converts ONNX-sourced LSTMs only ("not support in lstm mapper" otherwise), and
    # rnn_declare.cc adapts DynamicRNN, DynamicGRUV2, CommonLSTM, ... but no LSTM
    "LSTM": (False, _ACL + "lstm_mapper.cc"),
}

_PLATFORMS = re.compile(r"Supported Platforms:\s*((?:``\w+``\s*)+)")
_REFERS_TO = re.compile(r"Refer to :func:`mindspore\.([\w.]+)`")


def operators(path):
    """Counter of the primitives a MindIR file's graphs call, plumbing left out; a UserError when the
    file is not a MindIR."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such MindIR file (make one with export.py)")
    model = mind_ir_pb2.ModelProto()
    try:
        model.ParseFromString(Path(path).read_bytes())
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    except Exception as err:  # protobuf's DecodeError: not a MindIR
        raise UserError(f"{path}: not a MindIR file ({type(err).__name__}): export it with export.py") from None
    if not model.graph.node:
        raise UserError(f"{path}: not a MindIR file (no graph): export it with export.py")
    nodes = list(model.graph.node) + [node for function in model.functions for node in function.node]
    # op_type is "REF::Name:id" for a primitive the file declares, else the primitive's name
    names = (node.op_type.split("::")[-1].split(":")[0] for node in nodes)
    return Counter(name for name in names if name not in PLUMBING)


def documented_platforms(name):
    """The devices MindSpore documents the primitive `name` for, from its docstring (or the
    function its docstring refers to); None when nothing documents them."""
    primitive = getattr(gen_ops_prim, name, None) or getattr(operations, name, None)
    doc = (primitive.__doc__ or "") if primitive else ""
    refers_to = _REFERS_TO.search(doc)
    if not _PLATFORMS.search(doc) and refers_to:
        module, name = ("mindspore." + refers_to.group(1)).rsplit(".", 1)
        # generated functions (sum_ext, ...) are documented in gen_ops_def, not where the text says
        function = getattr(importlib.import_module(module), name, None) or getattr(gen_ops_def, name, None)
        doc = (function.__doc__ or "") if function else ""
    found = _PLATFORMS.search(doc)
    return tuple(re.findall(r"``(\w+)``", found.group(1))) if found else None


def problems(name, target):
    """Why `target` (a MindSpore device name) cannot run the primitive `name`; empty if it can."""
    found = []
    platforms = documented_platforms(name)
    if platforms is None:
        found.append("MindSpore documents no platforms for it")
    elif target not in platforms:
        found.append(f"MindSpore documents it for {', '.join(platforms)} only")
    if target == "Ascend":
        if name not in ASCEND_CONVERTER:
            found.append("it is not in mindir.ASCEND_CONVERTER, the operators read in MindSpore Lite's "
                         "Ascend converter")
        elif not ASCEND_CONVERTER[name][0]:
            found.append(f"MindSpore Lite's Ascend converter does not map it from a MindIR "
                         f"({ASCEND_CONVERTER[name][1]})")
    return found


def check_operators(path, export_target, shown_as=None):
    """Check every primitive of the MindIR at path against export_target (cpu, gpu, ascend); returns
    the summary line, or raises a one-line UserError naming the first operator the target lacks.
    shown_as: the file's name in both (export.py checks it under a hidden name before renaming it)."""
    target = TARGETS[export_target]
    ops = operators(path)
    shown_as = shown_as or path
    for name in sorted(ops):
        reasons = problems(name, target)
        if reasons:
            raise UserError(f"{shown_as}: operator {name} cannot run on {target}: {'; '.join(reasons)}")
    return (f"{shown_as}: {len(ops)} operators ({sum(ops.values())} calls) checked for {target}: "
            f"all documented for {target}" + (" and mapped by MindSpore Lite's Ascend converter"
                                              if target == "Ascend" else ""))


def lstm_form(path):
    """Which LSTM kernels a MindIR's graph calls: "ascend" (DynamicRNN), "cpu/gpu" (LSTM), or None
    (no LSTM: a GRU or RNN model)."""
    ops = operators(path)
    if "DynamicRNN" in ops:
        return "ascend"
    if "LSTM" in ops:
        return "cpu/gpu"
    return None


def check_form(path, export_target):
    """A UserError naming the file, its form and the export command when the MindIR at path was not
    exported for export_target (ascend, cpu or gpu)."""
    form = lstm_form(path)
    wanted = "ascend" if export_target == "ascend" else "cpu/gpu"
    if form is not None and form != wanted:
        raise UserError(f"{path} is the {form} form of the model (its LSTMs are "
                        f"{'DynamicRNN' if form == 'ascend' else 'LSTM'} nodes), not the one {TARGETS[export_target]} "
                        f"runs: python export.py --ckpt_path CKPT --export_target {export_target}")


SUFFIX = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}


def check_export_target(file_format, export_target, host):
    """A UserError when file_format cannot be written for export_target (cpu, gpu, ascend) on a
    `host` device: ONNX is the CPU form (onnxruntime), AIR the Ascend form on an Ascend host."""
    if file_format == "AIR" and host != "Ascend":
        raise UserError(f"AIR export needs an Ascend device (this run is on {host}): use "
                        f"--file_format MINDIR --export_target ascend, which the Ascend 310 app loads")
    if file_format == "AIR" and export_target != "ascend":
        raise UserError("AIR is for Ascend only: pass --export_target ascend, or --file_format MINDIR")
    if file_format == "ONNX" and export_target != "cpu":
        raise UserError(f"ONNX export writes the cpu form (for onnxruntime), not {export_target}: drop "
                        f"--export_target, or export MINDIR for {export_target}")


def export_network(net, file_name, file_format, length, export_target):
    """Write net, built for export_target (cpu, gpu, ascend), with input [1, length] to file_name +
    the format's suffix; returns (that path, the operator check's summary line or None).

    A MindIR's operators are checked against its target (check_operators) before it takes
    its name: a file the target cannot run is never left behind. ONNX: the network runs in the form
    MindSpore's ONNX exporter takes (DPRNN.set_onnx_export, the same function); GRU and RNN cells it
    cannot export at all."""
    if file_format == "ONNX":
        rnn = next((type(cell).__name__ for _, cell in net.cells_and_names()
                    if isinstance(cell, (nn.GRU, nn.RNN))), None)
        if rnn:
            raise UserError(f"MindSpore {ms.__version__} cannot export {rnn} layers to ONNX (its exporter lacks "
                            f"make_list): export a model with rnn_type LSTM, or --file_format MINDIR")
    net.set_train(False)
    net.set_onnx_export(file_format == "ONNX")
    example = ms.Tensor(np.zeros((1, length), np.float32))
    path = Path(file_name + SUFFIX[file_format])
    summary = None
    try:
        with made_folders(path.parent), atomic_path(path) as tmp:
            # exported under a hidden name and renamed: an earlier export stays whole until then
            ms.export(net, example, file_name=str(tmp.with_suffix("")), file_format=file_format)
            if file_format == "MINDIR":
                try:
                    summary = check_operators(tmp, export_target, shown_as=path)
                except UserError as err:
                    raise UserError(f"{err}; nothing was written") from None
    except (RuntimeError, TypeError, ValueError) as err:
        if file_format != "ONNX":
            raise
        first_line = next((line for line in str(err).splitlines() if line.strip()), "unknown error")
        raise UserError(f"MindSpore {ms.__version__} cannot export this network to ONNX "
                        f"({first_line.strip()}): export MINDIR instead") from None
    finally:
        net.set_onnx_export(False)
    return path, summary
