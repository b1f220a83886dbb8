"""Export: the format table refuses what it does not support; QAT/PTQ, ONNX and TFLite files carry their card,
run in the torch-free runtime and reproduce the float torch model on real aligned faces; float files are
byte-reproducible; every export is logged with time, size and sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")

import export_fixtures as fx  # noqa: E402

from shrinkface.export import qat  # noqa: E402
from shrinkface.export.calib import load_calibration_crops  # noqa: E402
from shrinkface.export.checkpoint import load_student_checkpoint  # noqa: E402
from shrinkface.export.equalize import equalize  # noqa: E402
from shrinkface.export.formats import ExportConfigError, ExportError, plan_exports  # noqa: E402
from shrinkface.export.mixed import expand_float_modules, in_module  # noqa: E402
from shrinkface.export.parity import artifact_quant  # noqa: E402
from shrinkface.runtime.card import ModelCard  # noqa: E402
from shrinkface.runtime.embed import load_embedder  # noqa: E402
from shrinkface.runtime.errors import DataError, ModelError  # noqa: E402
from shrinkface.train.students import build_student  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "export"


# -- the format table ----------------------------------------------------------------------------------------
def test_plan_defaults_and_order() -> None:
    targets = plan_exports("onnx,tflite", "float,int8", "ptq")
    assert [(t.format, t.quant, t.method, t.layout) for t in targets] == [
        ("onnx", "float", None, "NCHW"),
        ("onnx", "int8", "ptq", "NCHW"),
        ("tflite", "float", None, "NHWC"),
        ("tflite", "int8", "ptq", "NHWC"),
    ]
    assert targets[0].options == {"opset": 20}
    assert targets[1].options == {"opset": 20, "onnx_int8": "pt2e", "calib_size": 256, "float_modules": ""}
    assert targets[3].filename("student") == "student.int8.tflite"


@pytest.mark.parametrize(
    ("formats", "quants", "method", "layout", "options", "message"),
    [
        ("coreml", "float", "ptq", None, {}, "unknown format"),
        ("onnx", "fp16", "ptq", None, {}, "unknown quantisation"),
        ("onnx", "int8", "awq", None, {}, "unknown int8 method"),
        ("onnx", "float", "ptq", "NHWC", {}, "onnx cannot give a NHWC input"),
        ("tflite", "float", "ptq", None, {"opset": 18}, "only onnx takes it"),
        ("onnx", "float", "ptq", None, {"calib_size": 64}, "only applies to int8"),
        ("onnx", "float", "ptq", None, {"onnx_int8": "ort"}, "only applies to int8"),
        ("tflite", "int8", "ptq", None, {"qat_steps": 5}, "only applies to --qat"),
        ("onnx", "int8", "qat", None, {"onnx_int8": "ort"}, "post-training only"),
        ("onnx", "float", "ptq", None, {"opset": 13}, "outside 18–21"),
        ("onnx,onnx", "float", "ptq", None, {}, "listed twice"),
        ("onnx", "int8", "ptq", None, {"frobnicate": 1}, "no format takes it"),
        ("tflite", "float", "ptq", None, {"float_modules": "stem"}, "only applies to int8"),
        ("onnx", "int8", "ptq", None, {"onnx_int8": "ort", "float_modules": "stem"}, "needs the default pt2e"),
    ],
)
def test_plan_refuses_unsupported(formats, quants, method, layout, options, message) -> None:
    with pytest.raises(ExportConfigError, match=message):
        plan_exports(formats, quants, method, layout, options)


def test_cli_refuses_unsupported_option(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from shrinkface.export.cli import register

    app = typer.Typer()
    register(app)
    fake = tmp_path / "student.pt"
    fake.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(app, ["export", str(fake), "--formats", "onnx", "--layout", "NHWC"])
    assert result.exit_code != 0 and isinstance(result.exception, ExportConfigError)
    result = CliRunner().invoke(app, ["export", str(fake), "--quant", "float", "--qat"])
    assert isinstance(result.exception, ExportConfigError) and "int8" in str(result.exception)


def test_litert_qat_patch_exports_plain_function_patterns() -> None:
    import litert_torch.quantize.pt2e_quantizer_utils as utils

    qat.patch_litert_qat()
    qat.patch_litert_qat()  # idempotent

    def pattern(x, w):
        return torch.nn.functional.conv2d(x, w)

    graph = utils._get_aten_graph_module_for_pattern(pattern, (torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)))
    assert any("conv" in str(n.target) for n in graph.graph.nodes)


# -- model surgery -------------------------------------------------------------------------------------------
def test_fold_embedding_bn_is_exact_and_complete(data_dir: Path) -> None:
    model = build_student("mobilefacenet", 128, 0.25, "prelu").eval()
    with torch.no_grad():  # non-trivial BatchNorm1d statistics
        model.head.bn.running_mean.uniform_(-1, 1)
        model.head.bn.running_var.uniform_(0.5, 2)
        model.head.bn.weight.uniform_(0.5, 2)
    folded = qat.fold_embedding_bn(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    x = torch.from_numpy(ModelCard(name="x", embedding_size=128).preprocess(fx.glint_crops(data_dir, 8)))
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert torch.allclose(ref, out, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_fold_refuses_an_unfoldable_batchnorm() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(3 * 8 * 8), torch.nn.Linear(192, 4))
    with pytest.raises(ExportError, match="cannot fold"):
        qat.fold_embedding_bn(model, input_size=(8, 8))


def test_fold_conv_bn_removes_every_conv_batchnorm_and_keeps_the_function(data_dir: Path) -> None:
    model = build_student("mobilefacenet", 128, 0.25, "prelu").eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BatchNorm2d statistics and affine parameters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    folded = qat.fold_conv_bn(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.from_numpy(ModelCard(name="x", embedding_size=128).preprocess(fx.glint_crops(data_dir, 8)))
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert torch.allclose(ref, out, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_float_modules_run_in_float_and_keep_the_int8_input(data_dir: Path) -> None:
    model = qat.fold_embedding_bn(build_student("mobilefacenet", 128, 0.25, "prelu").eval())
    x = torch.from_numpy(ModelCard(name="x", embedding_size=128).preprocess(fx.glint_crops(data_dir, 16)))
    graph = qat.quantize_ptq(model, x, float_modules="stem").graph
    nodes = list(graph.graph.nodes)
    convs = [n for n in nodes if "conv2d" in str(n.target)]
    stem, rest = [n for n in convs if in_module(n, "stem")], [n for n in convs if not in_module(n, "stem")]
    assert len(stem) == 2 and rest
    # stem convolutions read float weights, the second a float activation; every other convolution reads
    # dequantised weights and activations
    assert all("dequantize" not in str(n.args[1].target) for n in stem)
    assert "dequantize" not in str(stem[1].args[0].target)
    assert all(all("dequantize" in str(a.target) for a in n.args[:2]) for n in rest)
    # the first reads the model input through its quantize → dequantize pair: the int8 file keeps int8 input
    assert "dequantize" in str(stem[0].args[0].target)
    assert stem[0].args[0].args[0].args[0].op == "placeholder"
    with torch.no_grad():
        assert torch.isfinite(graph(x[:2])).all()
    with pytest.raises(ExportError, match="no quantised op inside module 'nope'"):
        qat.quantize_ptq(model, x[:8], float_modules="nope")


def test_float_depthwise_keeps_every_depthwise_block_float_and_every_1x1_conv_int8(data_dir: Path) -> None:
    model = qat.fold_embedding_bn(build_student("mobilefacenet", 128, 0.25, "prelu").eval())
    names = expand_float_modules(model, "stem,depthwise")
    # MobileFaceNet (Chen et al. 2018): 15 bottlenecks (5 + 1 + 6 + 1 + 2), each with one 3×3 depthwise conv,
    # plus the head's 7×7 GDConv; the stem's depthwise conv is inside "stem" and not listed twice
    assert names[0] == "stem" and len(names) == 1 + 15 + 1 and names[-1] == "head.gdc"
    assert not any(n.startswith("stem.") for n in names)
    x = torch.from_numpy(ModelCard(name="x", embedding_size=128).preprocess(fx.glint_crops(data_dir, 16)))
    result = qat.quantize_ptq(model, x, float_modules="stem,depthwise")
    assert result.summary()["float_modules"] == list(names)  # what the file's card and export log carry
    graph = result.graph
    convs = [n for n in graph.graph.nodes if "conv2d" in str(n.target)]
    groups = {n: n.args[6] if len(n.args) > 6 else 1 for n in convs}  # aten.conv2d leaves out groups=1
    depthwise = [n for n in convs if groups[n] > 1]
    pointwise = [n for n in convs if groups[n] == 1 and not in_module(n, "stem")]
    assert len(depthwise) == 1 + 15 + 1 and len(pointwise) == 2 * 15 + 1  # expand + project per block, neck
    for n in depthwise:  # float weights and float input: no dequantize in front
        assert all("dequantize" not in str(a.target) for a in n.args[:2])
    for n in pointwise:  # int8 weights and input
        assert all("dequantize" in str(a.target) for a in n.args[:2])
    linear = [n for n in graph.graph.nodes if "linear" in str(n.target)]
    assert linear and all("dequantize" in str(a.target) for a in linear[0].args[:2])
    with torch.no_grad():
        assert torch.isfinite(graph(x[:2])).all()
    with pytest.raises(ExportError, match="no depthwise convolution"):
        expand_float_modules(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), "depthwise")


def test_float_depthwise_prelu_takes_only_blocks_with_a_per_channel_prelu() -> None:
    # the Makefile's choice: blocks whose PReLU runs float anyway (no int8 per-channel PReLU in XNNPACK)
    per_channel = build_student("mobilefacenet", 128, 0.25, "prelu")
    names = expand_float_modules(per_channel, "stem,head.gdc,depthwise-prelu")
    assert names[:2] == ("stem", "head.gdc") and len(names) == 2 + 15  # the GDConv has no activation
    assert set(names[2:]) == set(expand_float_modules(per_channel, "stem,depthwise")) - {"stem", "head.gdc"}
    for activation in ("relu", "prelu1"):  # int8 activations (ReLU fused, one slope as LEAKY_RELU): none taken
        student = build_student("mobilefacenet", 128, 0.25, activation)
        assert expand_float_modules(student, "stem,head.gdc,depthwise-prelu") == ("stem", "head.gdc")


def test_converted_graph_is_in_eval_mode_and_exports_without_warning(data_dir: Path) -> None:
    import warnings

    from shrinkface.export.onnx_export import export_onnx

    model = qat.fold_embedding_bn(build_student("mobilefacenet", 128, 0.25, "prelu").eval())
    card = ModelCard(name="x", embedding_size=128)
    x = torch.from_numpy(card.preprocess(fx.glint_crops(data_dir, 8)))
    result = qat.quantize_ptq(model, x)
    for graph in (result.graph, result.onnx_graph):
        assert not any(m.training for m in graph.modules())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*training mode.*")
        data = export_onnx(result.onnx_graph, card, None)
    assert len(data) > 10_000


def test_equalisation_keeps_the_function_and_evens_ranges(data_dir: Path) -> None:
    model = build_student("mobilefacenet", 128, 0.25, "prelu").eval()
    x = torch.from_numpy(ModelCard(name="x", embedding_size=128).preprocess(fx.glint_crops(data_dir, 24)))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # uneven per-channel scales, as trained networks have
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.logspace(-1.5, 0.5, m.num_features)[torch.randperm(m.num_features, generator=gen)])
    eq, report = equalize(model, x)
    assert len(report) >= 10  # stem, every expand → depthwise and depthwise → project, neck → GDC
    assert all(r["spread_after"] <= r["spread_before"] + 1e-6 for r in report)
    assert any(r["spread_after"] < 0.5 * r["spread_before"] for r in report)
    with torch.no_grad():
        ref, out = model(x), eq(x)
    assert float((ref - out).abs().max() / ref.abs().max()) < 1e-4


# -- data and checkpoints ------------------------------------------------------------------------------------
def test_calibration_refuses_lfw_and_unaligned(data_dir: Path, tmp_path: Path) -> None:
    card = ModelCard(name="x", embedding_size=128)
    with pytest.raises(DataError, match="LFW is the evaluation set"):
        load_calibration_crops(data_dir / "lfw" / "images", 8, card)
    aligned_from_lfw = tmp_path / "crops"
    aligned_from_lfw.mkdir()
    (aligned_from_lfw / "align.json").write_text(json.dumps({"size": 112, "src": str(data_dir / "lfw" / "images")}))
    with pytest.raises(DataError, match="LFW"):
        load_calibration_crops(aligned_from_lfw, 8, card)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "face.jpg").write_bytes(_jpeg(200, 160))
    with pytest.raises(DataError, match="not an aligned 112×112 crop"):
        load_calibration_crops(raw, 8, card)


def _jpeg(width: int, height: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def test_calibration_subset_is_deterministic(data_dir: Path) -> None:
    card = ModelCard(name="x", embedding_size=128)
    a, names_a = load_calibration_crops(data_dir / "glint-celeb6" / "images", 16, card)
    b, names_b = load_calibration_crops(data_dir / "glint-celeb6" / "images", 16, card)
    assert names_a == names_b and len(set(names_a)) == 16 and np.array_equal(a, b)
    assert len({n.split("/")[0] for n in names_a}) == 6  # evenly spread over the six people


def test_checkpoint_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError):
        load_student_checkpoint(bad)
    with pytest.raises(ModelError, match="not found"):
        load_student_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_card_names_its_source(base: Path, data_dir: Path) -> None:
    path = fx.checkpoint("relu", base, data_dir)
    _, card = load_student_checkpoint(path)
    assert card.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (card.embedding_size, card.layout, card.mean, card.std) == (128, "NCHW", (127.5,) * 3, (127.5,) * 3)
    assert card.extra["student"]["activation"] == "relu"


def test_card_from_trainer_checkpoint_dict() -> None:
    from shrinkface.export.checkpoint import card_from_checkpoint
    from shrinkface.train.trainer import PREPROCESS

    ckpt = {
        "student_config": {"arch": "mobilefacenet", "embedding_size": 128, "width": 0.25, "activation": "relu6"},
        "preprocess": PREPROCESS,
        "config": "name: ci_tiny\nsteps: 50\n",  # the trainer stores its config as YAML text
        "step": 50,
    }
    card = card_from_checkpoint(ckpt, "student", "ab" * 32)
    assert (card.name, card.embedding_size, card.source_sha256) == ("ci_tiny", 128, "ab" * 32)
    assert card.extra == {"student": ckpt["student_config"], "step": 50, "run": "ci_tiny"}
    assert (
        card_from_checkpoint({**ckpt, "card": card.replace(threshold=0.31).to_dict()}, "x", "cd" * 32).threshold == 0.31
    )
    with pytest.raises(ModelError, match="student_config"):
        card_from_checkpoint({"preprocess": PREPROCESS}, "x", "")


# -- the exported files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["prelu", "relu"])
def test_exported_files_carry_their_card_and_match_float(kind: str, base: Path, data_dir: Path) -> None:
    result = fx.exports(kind, base, data_dir)
    _, card = load_student_checkpoint(fx.checkpoint(kind, base, data_dir))
    names = [a.path.name for a in result.artifacts]
    assert names == [f"{kind}.{q}.{f}" for f in ("onnx", "tflite") for q in ("float", "int8")]
    report, cosines = fx.parity(kind, base, data_dir)  # every file embedded by load_embedder(path) alone
    rows = {r["file"]: r for r in report["artifacts"]}
    for art in result.artifacts:
        got = load_embedder(art.path).card  # no card given: it comes from inside the file
        assert got.source_sha256 == card.source_sha256 and got.embedding_size == card.embedding_size
        assert got.extra["export"]["format"] == art.target.format and artifact_quant(got) == art.target.quant
        assert tuple(got.template) == tuple(card.template) and got.mean == card.mean and got.std == card.std
        cos, row = cosines[art.path.name], rows[art.path.name]
        assert row["sha256"] == art.sha256 and len(cos) == report["images"]
        if art.target.quant == "float":
            assert cos.mean() >= 0.9999 and cos.min() >= 0.999, (art.path.name, cos.mean(), cos.min())
        elif kind == "prelu":  # trained weights: the real int8 gate
            assert cos.mean() >= 0.99, (art.path.name, cos.mean())
            assert got.extra["export"]["quantization"]["method"] == "ptq"
        else:  # untrained ReLU student: the int8 file still follows the float model
            assert cos.mean() >= 0.6, (art.path.name, cos.mean())
            assert got.extra["export"]["quantization"]["method"] == "qat"


def test_exported_tflite_files_are_not_taken_for_float_teachers(base: Path, data_dir: Path) -> None:
    """train/tflite_torch.py converts only float graphs of the operators it knows: the int8 export (int8 tensors)
    and the float export (a PAD op, preprocessing inside) are refused with the reason, never approximated."""
    from shrinkface.train.tflite_torch import TFLiteGraph

    paths = {a.path.name: a.path for a in fx.exports("prelu", base, data_dir).artifacts}
    with pytest.raises(ModelError, match="not float32"):
        TFLiteGraph(paths["prelu.int8.tflite"])
    with pytest.raises(ModelError, match="cannot be converted"):
        TFLiteGraph(paths["prelu.float.tflite"])


@pytest.mark.parametrize("kind", ["prelu", "relu"])
def test_int8_tflite_is_full_integer_with_card_from_its_tensors(kind: str, base: Path, data_dir: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    path = next(a.path for a in fx.exports(kind, base, data_dir).artifacts if a.path.name.endswith("int8.tflite"))
    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    card = load_embedder(path).card
    assert np.dtype(inp["dtype"]) == np.int8 and np.dtype(out["dtype"]) == np.int8
    assert list(inp["shape"]) == [1, 112, 112, 3] and card.layout == "NHWC" and card.fixed_batch == 1
    assert card.input_scale == pytest.approx(inp["quantization"][0]) and card.input_zero_point == inp["quantization"][1]
    assert card.output_scale == pytest.approx(out["quantization"][0])
    assert card.output_zero_point == out["quantization"][1]


def test_tflite_op_lists_prelu_and_residual_adds(base: Path, data_dir: Path) -> None:
    """Float: one PRELU op per nn.PReLU (native lowering, no RELU/MUL/SUB chain). int8: every conv int8, each
    PReLU one float PRELU (the model's own slopes) between DEQUANTIZE and QUANTIZE; one XNNPACK partition each."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from shrinkface.runtime.bench_models import litert_ops

    arts = {a.path.name: a.path for a in fx.exports("prelu", base, data_dir).artifacts}
    model, _ = load_student_checkpoint(fx.checkpoint("prelu", base, data_dir))
    n_prelu = sum(isinstance(m, torch.nn.PReLU) for m in model.modules())
    n_add = 12  # MobileFaceNet: the residual blocks of its 4 + 6 + 2 repeated bottlenecks
    for name in ("prelu.float.tflite", "prelu.int8.tflite"):
        info = litert_ops(_loaded(Interpreter(model_path=str(arts[name]), num_threads=1)))
        assert info["delegate_partitions"] == 1, (name, info)
        assert info["ops"]["PRELU"] == n_prelu == 33 and "SUB" not in info["ops"] and "RELU" not in info["ops"]
    plain = _loaded(
        Interpreter(
            model_path=str(arts["prelu.int8.tflite"]),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    )
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    adds = [o for o in ops if o["op_name"] == "ADD"]  # kept float on purpose (see make_quantizer)
    assert len(adds) == n_add and all(dtypes[o["outputs"][0]] == np.float32 for o in adds)
    convs = [o for o in ops if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert all(dtypes[o["outputs"][0]] == np.int8 for o in convs)
    prelus = [o for o in ops if o["op_name"] == "PRELU"]
    assert all(dtypes[i] == np.float32 for o in prelus for i in o["inputs"])
    slopes = [m.weight.detach().numpy() for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    for op, slope in zip(prelus, slopes, strict=True):  # the model's own float slopes, not int8 ones
        np.testing.assert_array_equal(plain.get_tensor(op["inputs"][1]).ravel(), slope)
    n_dequantize = sum(o["op_name"] == "DEQUANTIZE" for o in ops)
    assert n_prelu <= n_dequantize <= n_prelu + 2 * n_add  # before each PReLU, and before the adds


def _loaded(interpreter: Any) -> Any:
    interpreter.allocate_tensors()
    return interpreter


def test_onnx_files_pass_the_checker_with_opset_20(base: Path, data_dir: Path) -> None:
    import onnx

    for art in fx.exports("relu", base, data_dir).artifacts:
        if art.target.format != "onnx":
            continue
        proto = onnx.load(str(art.path))
        onnx.checker.check_model(proto, full_check=True)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 20
        assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a free batch dimension
        ops = {n.op_type for n in proto.graph.node}
        assert ("QuantizeLinear" in ops) == (art.target.quant == "int8")


def test_export_log_records_time_size_sha(base: Path, data_dir: Path) -> None:
    result = fx.exports("relu", base, data_dir)
    log = json.loads(result.log_path.read_text())
    assert log["source"]["sha256"] == hashlib.sha256(fx.checkpoint("relu", base, data_dir).read_bytes()).hexdigest()
    for row in log["artifacts"]:
        data = (result.log_path.parent / row["file"]).read_bytes()
        assert row["bytes"] == len(data) and row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["seconds"] > 0
        assert row.get("delegate_partitions") == (1 if row["format"] == "tflite" else None), row
    assert log["quantization"]["method"] == "qat" and log["quantization"]["qat_steps"] == fx.RELU_QAT["qat_steps"]
    assert log["calibration"]["images"] == fx.RELU_QAT["calib_size"] and log["versions"]["torch"].startswith("2.")


def test_float_exports_are_byte_reproducible(base: Path, data_dir: Path) -> None:
    from shrinkface.export.exporter import export_checkpoint

    first = {a.path.name: a.sha256 for a in fx.exports("relu", base, data_dir).artifacts if a.target.quant == "float"}
    again = export_checkpoint(
        fx.checkpoint("relu", base, data_dir), base / "again", plan_exports("onnx,tflite", "float")
    )
    assert {a.path.name: a.sha256 for a in again.artifacts} == first


def test_qat_failure_falls_back_to_ptq(monkeypatch: pytest.MonkeyPatch, base: Path, data_dir: Path) -> None:
    model, card = load_student_checkpoint(fx.checkpoint("relu", base, data_dir))
    x = torch.from_numpy(card.preprocess(fx.glint_crops(data_dir, 8)))

    def broken(*args, **kwargs):
        raise RuntimeError("simulated QAT failure")

    monkeypatch.setattr(qat, "quantize_qat", broken)
    result = qat.quantize(qat.fold_embedding_bn(model), x, "qat")
    assert (result.method, result.requested) == ("ptq", "qat")
    assert "simulated QAT failure" in result.fallback_reason
    assert result.summary()["fallback_reason"].endswith("used PTQ")


def test_onnx_int8_by_onnxruntime_quantize_static(base: Path, data_dir: Path) -> None:
    from shrinkface.export.exporter import export_checkpoint

    targets = plan_exports("onnx", "int8", "ptq", options={"onnx_int8": "ort", "calib_size": 16})
    (art,) = export_checkpoint(fx.checkpoint("relu", base, data_dir), base / "ort", targets).artifacts
    card = load_embedder(art.path).card
    assert card.extra["export"]["quantization"]["tool"] == "onnxruntime.quantize_static"
    assert card.input_dtype == "float32" and artifact_quant(card) == "int8"
    model, float_card = load_student_checkpoint(fx.checkpoint("relu", base, data_dir))
    crops = fx.glint_crops(data_dir, 16, offset=5)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(torch.from_numpy(float_card.preprocess(crops))), dim=1).numpy()
    assert np.einsum("ij,ij->i", ref, load_embedder(art.path).embed(crops, flip=False)).mean() > 0.6


def test_bench_models_on_exported_int8(base: Path, data_dir: Path, tmp_path: Path) -> None:
    """The runtime's `bench models` times a float and a full-int8 export (int8 input dtype read from the card)."""
    import typer
    from typer.testing import CliRunner

    from shrinkface.runtime.cli_bench import register

    app = typer.Typer()
    register(app)
    files = [str(a.path) for a in fx.exports("relu", base, data_dir).artifacts if a.target.format == "tflite"]
    result = CliRunner().invoke(
        app, ["bench", "models", *files, "--runs", "5", "--warmup", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    rows = {r["file"]: r for r in json.loads((tmp_path / "bench.json").read_text())["results"]}
    assert set(rows) == {"relu.float.tflite", "relu.int8.tflite"}
    assert rows["relu.int8.tflite"]["input_dtype"] == "int8" and rows["relu.int8.tflite"]["invoke"]["median_ms"] > 0
