"""One-slope PReLU students (activation prelu1) at export: the PReLU → LeakyReLU swap is exact, and the int8
TFLite file runs every activation as an int8 LEAKY_RELU (or a fused ReLU) inside one XNNPACK partition, close to
the float model on real faces; the head's GDConv can stay float (``--float-modules head.gdc``); a prelu1 student's
per-channel exceptions (``channel_slopes``) are float PRELUs in the same partition."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")

import export_fixtures as fx  # noqa: E402

from shrinkface.export.checkpoint import load_student_checkpoint, save_student_checkpoint  # noqa: E402
from shrinkface.export.leaky import shared_prelu_as_leaky  # noqa: E402
from shrinkface.runtime.card import ModelCard  # noqa: E402
from shrinkface.train.students import build_student  # noqa: E402
from shrinkface.train.students.fade import one_slope_twin  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "export"  # shared with test_export.py's fixture students


def test_one_slope_prelu_becomes_leaky_relu_or_relu_exactly() -> None:
    torch.manual_seed(0)
    model = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="prelu1").eval()
    prelus = [m for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    with torch.no_grad():
        for i, m in enumerate(prelus):
            m.weight.fill_(0.0 if i % 5 == 0 else float(np.sin(i)) * 0.3)  # both signs, some exactly 0
    swapped, n = shared_prelu_as_leaky(copy.deepcopy(model))
    assert n == len(prelus) == 33
    zero = sum(1 for i in range(len(prelus)) if i % 5 == 0)
    assert sum(isinstance(m, torch.nn.ReLU) for m in swapped.modules()) == zero
    leaky = [m for m in swapped.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(leaky) == n - zero
    assert not any(isinstance(m, torch.nn.PReLU) for m in swapped.modules())
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(swapped(x), model(x))
    per_channel = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="prelu")
    assert shared_prelu_as_leaky(per_channel)[1] == 0


#: per-channel exceptions of the hybrid variant (student.channel_slopes): two in the float stem, two islands
KEEP = ["stem.0.2", "stem.1.2", "stage8.1.0.block.0.2", "neck.2"]


def _prelu1_checkpoint(base: Path, data_dir: Path, keep: list[str]) -> Path:
    """The warm-started PReLU fixture student with each layer's slopes faded to their mean but the ``keep``
    layers' (untrained, real weights: realistic activation ranges), saved as a prelu1 checkpoint."""
    ckpt = torch.load(fx.checkpoint("prelu", base, data_dir), weights_only=True)
    twin, config = one_slope_twin(ckpt["student"], ckpt["student_config"], keep)
    return save_student_checkpoint(twin, config, base / "checkpoints" / f"prelu1_keep{len(keep)}.pt")


@pytest.mark.parametrize("keep", [[], KEEP], ids=["prelu1", "prelu1+channel_slopes"])
def test_prelu1_int8_tflite_runs_int8_leaky_relu_in_one_partition(
    base: Path, data_dir: Path, tmp_path: Path, keep: list[str]
) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from shrinkface.export.exporter import export_checkpoint
    from shrinkface.export.formats import plan_exports
    from shrinkface.runtime.bench_models import litert_ops
    from shrinkface.runtime.embed import load_embedder

    path = _prelu1_checkpoint(base, data_dir, keep)
    model, _ = load_student_checkpoint(path)
    slopes = [float(m.weight) for m in model.modules() if isinstance(m, torch.nn.PReLU) and m.num_parameters == 1]
    options = {"calib_size": fx.CALIB_SIZE, "float_modules": "stem,head.gdc"}
    result = export_checkpoint(path, tmp_path, plan_exports("tflite", "int8", "ptq", options=options))
    file = result.artifacts[0].path

    info = litert_ops(_loaded(Interpreter(model_path=str(file), num_threads=1)))
    assert info["delegate_partitions"] == 1, info
    builtin = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    plain = _loaded(Interpreter(model_path=str(file), experimental_op_resolver_type=builtin))
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    # each kept per-channel layer is a float PRELU (in the float stem, or an island between DEQUANTIZE/QUANTIZE)
    prelu = [o for o in ops if o["op_name"] == "PRELU"]
    assert len(prelu) == len(keep) and all(dtypes[o["inputs"][0]] == np.float32 for o in prelu)
    leaky = [o for o in ops if o["op_name"] == "LEAKY_RELU"]
    # every non-zero slope is a LEAKY_RELU, int8 in and out but the stem's two and the neck's (it feeds the float
    # GDConv), which run in float; zero slopes are ReLUs fused into their convolution
    assert len(leaky) == sum(s != 0.0 for s in slopes) > 20
    int8 = [o for o in leaky if dtypes[o["inputs"][0]] == np.int8]
    assert len(int8) >= len(leaky) - 3 and all(dtypes[o["outputs"][0]] == np.int8 for o in int8)
    # the GDConv (7×7 depthwise, 1×1 output) reads float: DEQUANTIZE before it
    gdc = [o for o in ops if o["op_name"] == "DEPTHWISE_CONV_2D"][-1]
    assert dtypes[gdc["inputs"][0]] == np.float32 and dtypes[gdc["outputs"][0]] == np.float32

    crops = fx.glint_crops(data_dir, 24, offset=5)
    card = ModelCard(name="x", embedding_size=model.embedding_size)
    with torch.no_grad():
        ref = model(torch.from_numpy(card.preprocess(crops))).numpy()
    got = load_embedder(file).embed(crops, flip=False)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = np.sum(got * ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.mean() >= 0.99, cos


def _loaded(interpreter: Any) -> Any:
    interpreter.allocate_tensors()
    return interpreter
