"""Exported models: written in the form of the device that runs them (export_network: MindIR, ONNX,
AIR), and what an exported MindIR holds and whether that device can run it.

A MindIR is only as portable as its primitives: the LSTM kernels differ by device (layers.LSTM_FORMS),
so export.py writes one form per target and checks every primitive of the written file against

- the platforms MindSpore documents for it: the "Supported Platforms" of the installed primitive's
  docstring (or of the function it refers to), read at run time;
- for Ascend, MindSpore Lite's Ascend converter (ASCEND_CONVERTER below): a raw MindIR reaches the
  310 through its ACL pass, which fails at Model::Build on an operator it cannot take.

An ONNX export has a second route to the 310, through Lite's converter_lite (scripts/convert_310.sh):
check_onnx_for_ascend checks its operators against Lite's ONNX parsers and the ACL pass
(ONNX_ASCEND_CONVERTER).
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

# Where each citation below was read. Lite: mindspore-lite master at 2b28870 (its mindspore submodule:
# r2.7.rc1). GE: MindSpore's graph-engine operator adapters (REG_ADPT_DESC), read under their 2.x path
# transform/graph_ir/op_declare/; Lite r2.7 builds the same adapters from
# mindspore/ccsrc/backend/ge_backend/graph_ir/ (mindspore-lite/tools/converter/adapter/acl/CMakeLists.txt).
_LITE = "mindspore-lite@2b28870: mindspore-lite/tools/converter/"
_ORG_MINDIR = _LITE + "adapter/acl/src/acl_pass_impl.cc (MapperForOrgMindIR's list), "
_ACL = _LITE + "adapter/acl/mapper/"
_EXTEND = _LITE + "import/convert_extend_ops/"
_GE = "mindspore 2.x: mindspore/ccsrc/transform/graph_ir/op_declare/"
# How MindSpore Lite's Ascend converter takes each operator the project's networks export to, from a
# MindIR: AclPassImpl::MapperForOrgMindIR runs an ACL mapper only for Transpose, MatMul, BatchMatMul
# and a few others; SumExt is rewritten into ReduceSum before; every other primitive goes, by its own
# name, to a graph-engine operator adapter, and one without an adapter fails at Model::Build. An
# operator not listed here is refused for Ascend until its source has been read.
ASCEND_CONVERTER = {
    "Add": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "BroadcastTo": (True, _GE + "pad_ops_declare.cc"),
    "Cast": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "Concat": (True, _GE + "split_combination_ops_declare.cc (ConcatD)"),
    "CumSum": (True, _GE + "selection_ops_declare.cc (CumsumD)"),
    "Div": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "DynamicRNN": (True, _GE + "rnn_declare.cc"),
    "ExpandDims": (True, _GE + "array_ops_declare.cc"),
    "MatMul": (True, _ORG_MINDIR + _ACL + "matmul_fusion_mapper.cc"),
    "Mul": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "Neg": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "LayerNorm": (True, _GE + "nn_norm_ops_declare.cc"),
    "Pad": (True, _GE + "pad_ops_declare.cc"),
    "Pow": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "ReLU": (True, _GE + "nonlinear_fuc_ops_declare.cc"),
    "Reshape": (True, _GE + "array_ops_declare.cc"),
    "ReverseV2": (True, _GE + "selection_ops_declare.cc (ReverseV2D)"),
    "Sigmoid": (True, _GE + "nonlinear_fuc_ops_declare.cc"),
    "Sqrt": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "StridedSlice": (True, _GE + "selection_ops_declare.cc"),
    "Sub": (True, _GE + "elewise_calculation_ops_declare.cc"),
    "SumExt": (True, _EXTEND + "sum_ext.cc (into ReduceSum: " + _GE + "reduce_ops_declare.cc)"),
    "Tanh": (True, _GE + "nonlinear_fuc_ops_declare.cc"),
    "Transpose": (True, _ORG_MINDIR + _ACL + "transpose_mapper.cc"),
    # not in MapperForOrgMindIR's list (LSTMMapper is for ONNX models), and no op adapter: rnn_declare.cc
    # adapts DynamicRNN, DynamicGRUV2, CommonLSTM, BasicLSTMCell, ... but no LSTM
    "LSTM": (False, "no op adapter: " + _GE + "rnn_declare.cc; " + _ORG_MINDIR.rstrip(", ")),
}
# The ONNX route (scripts/convert_310.sh: converter_lite --fmk=ONNX --optimize=ascend_oriented): each ONNX
# operator of the project's ONNX export, the parser that reads it into a Lite primitive, and how the ACL
# pass takes that primitive (for an ONNX model it runs every registered ACL mapper; a primitive without
# one goes to its graph-engine adapter by name). Constant nodes become the graph's parameters.
_ONNX = _LITE + "parser/onnx/"
ONNX_ASCEND_CONVERTER = {
    "Add": _ONNX + "onnx_arithmetic_operation_parser.cc -> AddFusion: " + _ACL + "arithmetic_mapper.cc",
    "Cast": _ONNX + "onnx_cast_parser.cc -> Cast: " + _ACL + "cast_mapper.cc",
    "Concat": _ONNX + "onnx_concat_parser.cc -> Concat: " + _ACL + "concat_mapper.cc",
    "Constant": _ONNX + "onnx_constant_parser.cc -> a parameter",
    "ConstantOfShape": _ONNX + "onnx_constant_of_shape_parser.cc -> ConstantOfShape: " + _ACL
    + "constant_of_shape_mapper.cc",
    "Div": _ONNX + "onnx_arithmetic_operation_parser.cc -> DivFusion: " + _ACL + "arithmetic_mapper.cc",
    "Expand": _ONNX + "onnx_expand_parser.cc -> BroadcastTo: " + _ACL + "broadcast_to_mapper.cc",
    "Gemm": _ONNX + "onnx_matmul_parser.cc -> MatMulFusion: " + _ACL + "matmul_fusion_mapper.cc",
    "Identity": _ONNX + "onnx_identity_parser.cc -> Identity: " + _GE + "array_ops_declare.cc",
    "LSTM": _ONNX + "onnx_lstm_parser.cc -> LSTM: " + _ACL + "lstm_mapper.cc (ONNX-sourced, 7 inputs) -> "
    "CommonLSTM: " + _GE + "rnn_declare.cc",
    "MatMul": _ONNX + "onnx_matmul_parser.cc -> MatMulFusion: " + _ACL + "matmul_fusion_mapper.cc",
    "Mul": _ONNX + "onnx_arithmetic_operation_parser.cc -> MulFusion: " + _ACL + "arithmetic_mapper.cc",
    "Neg": _ONNX + "onnx_arithmetic_operation_parser.cc -> Neg: " + _GE + "elewise_calculation_ops_declare.cc",
    "Pad": _ONNX + "onnx_pad_parser.cc -> PadFusion: " + _ACL + "pad_fusion_mapper.cc",
    "Pow": _ONNX + "onnx_arithmetic_operation_parser.cc -> PowFusion: " + _ACL + "arithmetic_mapper.cc",
    "ReduceMean": _ONNX + "onnx_reduce_parser.cc -> ReduceFusion: " + _ACL + "reduce_fusion_mapper.cc",
    "ReduceSumSquare": _ONNX + "onnx_reduce_parser.cc -> ReduceFusion: " + _ACL + "reduce_fusion_mapper.cc",
    "ReduceSum": _ONNX + "onnx_reduce_parser.cc -> ReduceFusion: " + _ACL + "reduce_fusion_mapper.cc",
    "Relu": _ONNX + "onnx_activation_parser.cc -> Activation: " + _ACL + "activation_mapper.cc",
    "Reshape": _ONNX + "onnx_reshape_parser.cc -> Reshape: " + _ACL + "reshape_mapper.cc",
    "Shape": _ONNX + "onnx_shape_parser.cc -> Shape: " + _GE + "array_ops_declare.cc",
    "Sigmoid": _ONNX + "onnx_activation_parser.cc -> Activation: " + _ACL + "activation_mapper.cc",
    "Slice": _ONNX + "onnx_slice_parser.cc -> StridedSlice: " + _ACL + "stridedslice_mapper.cc",
    "Split": _ONNX + "onnx_split_parser.cc -> Split: " + _ACL + "split_mapper.cc",
    "Sqrt": _ONNX + "onnx_arithmetic_operation_parser.cc -> Sqrt: " + _GE + "elewise_calculation_ops_declare.cc",
    "Sub": _ONNX + "onnx_arithmetic_operation_parser.cc -> SubFusion: " + _ACL + "arithmetic_mapper.cc",
    "Tanh": _ONNX + "onnx_activation_parser.cc -> Activation: " + _ACL + "activation_mapper.cc",
    "Transpose": _ONNX + "onnx_transpose_parser.cc -> Transpose: " + _ACL + "transpose_mapper.cc",
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


def onnx_operators(path):
    """Counter of the operator types of an ONNX file's graph; a UserError when it is not ONNX."""
    import onnx
    if not Path(path).is_file():
        raise UserError(f"{path}: no such ONNX file (make one with export.py --file_format ONNX)")
    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError: not an ONNX file
        raise UserError(f"{path}: not an ONNX file ({type(err).__name__}): export it with export.py "
                        f"--file_format ONNX") from None
    if not model.graph.node:
        raise UserError(f"{path}: not an ONNX file (no graph): export it with export.py --file_format ONNX")
    return Counter(node.op_type for node in model.graph.node)


def check_onnx_for_ascend(path, shown_as=None):
    """The summary line when every operator of the ONNX file at path is read by Lite's ONNX parsers and
    taken by its Ascend converter (ONNX_ASCEND_CONVERTER); else a one-line UserError naming the first
    that is not. shown_as: the file's name in both."""
    ops = onnx_operators(path)
    path = shown_as or path
    unknown = sorted(set(ops) - set(ONNX_ASCEND_CONVERTER))
    if unknown:
        raise UserError(f"{path}: ONNX operator {unknown[0]} is not in mindir.ONNX_ASCEND_CONVERTER, the operators "
                        f"read in MindSpore Lite's ONNX parsers and Ascend converter: it may not convert for Ascend")
    return (f"{path}: {len(ops)} ONNX operators ({sum(ops.values())} nodes) checked for Ascend (scripts/"
            f"convert_310.sh): all read by MindSpore Lite's ONNX parsers and taken by its Ascend converter")


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
            found.append(f"MindSpore Lite's Ascend converter does not take it from a MindIR "
                         f"({ASCEND_CONVERTER[name][1]})")
    return found


def check_operators(path, export_target, shown_as=None):
    """Check every primitive of the MindIR at path against export_target (cpu, gpu, ascend); returns
    the summary line, or raises a one-line UserError naming the first operator the target lacks.
    shown_as: the file's name in both (export.py checks it under a hidden name before renaming it)."""
    target = TARGETS[export_target]
    ops = operators(path)
    shown_as = shown_as or path
    if target == "Ascend" and converted_for_ascend(ops):
        return (f"{shown_as}: converted for Ascend by converter_lite ({sum(ops.values())} ACL Custom node(s)): "
                f"its operators were checked before conversion (export.py --check_onnx)")
    for name in sorted(ops):
        reasons = problems(name, target)
        if reasons:
            raise UserError(f"{shown_as}: operator {name} cannot run on {target}: {'; '.join(reasons)}")
    return (f"{shown_as}: {len(ops)} operators ({sum(ops.values())} calls) checked for {target}: "
            f"all documented for {target}" + (" and mapped by MindSpore Lite's Ascend converter"
                                              if target == "Ascend" else ""))


def converted_for_ascend(ops):
    """Whether a MindIR's operators (operators()) are what converter_lite's Ascend conversion leaves:
    the whole graph built into ACL Custom nodes (adapter/acl/src/acl_pass_impl.cc, kCustomPrimTypeACL)."""
    return set(ops) == {"Custom"}


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
            elif file_format == "ONNX":
                # onnxruntime runs any of them: for the 310's ONNX route the check is a note, not a refusal
                try:
                    summary = check_onnx_for_ascend(tmp, shown_as=path)
                except UserError as err:
                    summary = f"note: {err}"
    except (RuntimeError, TypeError, ValueError) as err:
        if file_format != "ONNX":
            raise
        first_line = next((line for line in str(err).splitlines() if line.strip()), "unknown error")
        raise UserError(f"MindSpore {ms.__version__} cannot export this network to ONNX "
                        f"({first_line.strip()}): export MINDIR instead") from None
    finally:
        net.set_onnx_export(False)
    return path, summary
