"""Students: MobileFaceNet against the paper's size and cost, options, feature taps, export, channels_last."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from shrinkface.runtime.card import ModelCard  # noqa: E402
from shrinkface.train.students import STUDENTS, FaceStudent, StudentConfigError, build_student  # noqa: E402

pytestmark = pytest.mark.torch

PAPER_PARAMS = 0.99e6  # Chen et al. 2018, arXiv 1804.07573, Table 3
PAPER_MACS = 221e6


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def real_faces(data_dir: Path) -> torch.Tensor:
    """Four real aligned 112×112 glint crops of two people, preprocessed by the model card default."""
    root = data_dir / "glint-celeb6" / "images"
    files = [root / "Barack_Obama" / "0.jpg", root / "Barack_Obama" / "1.jpg"]
    files += sorted((root / "Hugh_Laurie").glob("*.jpg"))[:2]
    crops = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    assert crops.shape == (4, 112, 112, 3)
    return torch.from_numpy(ModelCard(name="student", embedding_size=128).preprocess(crops))


def hook_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every Conv2d and Linear for one image, summed by forward hooks."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += out[0].numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model.eval()(x[:1])
    for h in handles:
        h.remove()
    return total


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mobilefacenet_matches_the_paper() -> None:
    model = build_student("mobilefacenet")
    x = torch.randn(1, 3, 112, 112)
    macs = hook_macs(model, x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert abs(n_params(model) - PAPER_PARAMS) / PAPER_PARAMS < 0.02, n_params(model)
    assert abs(macs - PAPER_MACS) / PAPER_MACS < 0.01, macs
    assert counter.get_total_flops() / 2 == pytest.approx(macs, rel=1e-3)  # two counting methods agree
    # the paper's layer list: 1 stem conv + 1 depthwise + 15 bottlenecks × 3 convs + 1×1 + GDC = 49 convs
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 49
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) == 2 + 15 * 2 + 1


def test_width_embedding_and_activation_options() -> None:
    full = build_student("mobilefacenet")
    half = build_student("mobilefacenet", width=0.5, activation="relu", embedding_size=256)
    x = torch.randn(2, 3, 112, 112)
    assert half.eval()(x).shape == (2, 256)
    # channels halve, so MACs drop to about a quarter (the stem's 3 input channels do not halve)
    assert 0.2 < hook_macs(half, x) / hook_macs(full, x) < 0.3
    assert not any(isinstance(m, nn.PReLU) for m in half.modules())
    assert any(isinstance(m, nn.ReLU) for m in half.modules())
    relu6 = build_student("mobilenetv2", activation="relu6")
    assert any(isinstance(m, nn.ReLU6) for m in relu6.modules())
    assert not any(isinstance(m, nn.PReLU | nn.ReLU) for m in relu6.modules())


def test_mobilenetv2_backbone_matches_imagenet_mobilenetv2_at_stride_16() -> None:
    model = build_student("mobilenetv2", activation="relu6")
    # ImageNet MobileNetV2 1.0 has 3,504,872 parameters (torchvision's published count), of which the
    # 1280→1000 classifier holds 1,281,000: its feature extractor has 2,223,872; strides change none.
    backbone = [model.stem, model.stage4, model.stage8, model.stage16, model.neck]
    assert sum(n_params(m) for m in backbone) == 3_504_872 - 1_281_000
    strides = [m.stride[0] for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride[0] > 1]
    assert strides == [2, 2, 2, 2]  # total stride 16: the 160-channel stage no longer strides


@pytest.mark.parametrize("arch", sorted(STUDENTS))
def test_feature_taps_and_head(arch: str) -> None:
    model = build_student(arch, width=0.5).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        feats = model.forward_features(x)
        emb = model(x)
    assert set(feats) == {"s4", "s8", "s16", "embedding"}
    for key, side in (("s4", 28), ("s8", 14), ("s16", 7)):
        assert feats[key].shape == (2, model.feature_channels[key], side, side)
        assert 112 // model.feature_strides[key] == side
    torch.testing.assert_close(feats["embedding"], emb)
    # the head ends in BatchNorm1d that folds into the Linear without changing the output
    assert isinstance(model.head.bn, nn.BatchNorm1d)
    model.head.bn.running_mean.uniform_(-1, 1)
    model.head.bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        before = model(x)
        fused = torch.nn.utils.fusion.fuse_linear_bn_eval(model.head.linear, model.head.bn)
        model.head.linear, model.head.bn = fused, nn.Identity()
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(STUDENTS))
def test_torch_export(arch: str) -> None:
    model = build_student(arch).eval()
    x = torch.randn(2, 3, 112, 112)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-4, atol=1e-5)
    # a dynamic batch dimension (what the QAT flow exports) also traces, and runs on another batch size
    dynamic = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", max=256)},))
    x3 = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(dynamic.module()(x3), model(x3), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(STUDENTS))
def test_channels_last_on_real_faces(arch: str, real_faces: torch.Tensor) -> None:
    model = build_student(arch)
    model.train()
    model(real_faces)  # one training-mode pass so BN running stats come from real faces
    model.eval()
    with torch.no_grad():
        reference = model(real_faces)
        cl_model = build_student(arch)
        cl_model.load_state_dict(model.state_dict())
        cl_model = cl_model.eval().to(memory_format=torch.channels_last)
        out = cl_model(real_faces.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, rtol=1e-3, atol=1e-4)
    # training step in channels_last: gradients reach the first conv
    cl_model.train()
    cl_model(real_faces.contiguous(memory_format=torch.channels_last)).pow(2).mean().backward()
    first = next(m for m in cl_model.modules() if isinstance(m, nn.Conv2d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_bad_options_raise_typed_errors() -> None:
    with pytest.raises(StudentConfigError, match="unknown student"):
        build_student("resnet1000")
    with pytest.raises(StudentConfigError, match="activation"):
        build_student("mobilefacenet", activation="gelu")
    with pytest.raises(StudentConfigError, match="width"):
        build_student("mobilefacenet", width=0.0)
    with pytest.raises(StudentConfigError, match="embedding_size"):
        build_student("mobilefacenet", embedding_size=0)
    model = build_student("mobilefacenet", width=0.5)
    assert isinstance(model, FaceStudent)
    with pytest.raises(StudentConfigError, match="112"):
        model(torch.randn(1, 3, 96, 96))
    assert isinstance(build_student("MobileFaceNet"), FaceStudent)  # names are case/dash-insensitive
