"""PReLU → ReLU slope fading (train/students/fade.py): the formula against numpy, exact at both ends, the config's
refusals, and a real short run whose final ReLU ``student.pt`` reloads into a plain ReLU student."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shrinkface.train.checkpoint import load_checkpoint, load_student  # noqa: E402
from shrinkface.train.config import ConfigError, load_config  # noqa: E402
from shrinkface.train.students import StudentConfigError, build_student  # noqa: E402
from shrinkface.train.students.fade import (  # noqa: E402
    FadingPReLU,
    attach_faders,
    fade_at,
    faded_state_dict,
    freeze_slopes,
    set_fade,
)
from shrinkface.train.trainer import train  # noqa: E402

CI_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ci_tiny.yaml"


def _prelu_student() -> torch.nn.Module:
    torch.manual_seed(0)
    student = build_student("mobilefacenet", embedding_size=64, width=0.25)
    with torch.no_grad():
        for m in student.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(-0.3, 0.6)  # slopes a trained PReLU net has, both signs
    return student.eval()


def test_fader_follows_its_formula_in_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 3, 3)).astype(np.float32)
    a = rng.uniform(-0.5, 0.8, size=5).astype(np.float32)
    fader = FadingPReLU(5)
    with torch.no_grad():
        fader.weight.copy_(torch.from_numpy(a))
    for lam in (1.0, 0.35, 0.0):
        fader.fade = lam
        expected = np.maximum(x, 0) + lam * a[None, :, None, None] * np.minimum(x, 0)
        np.testing.assert_allclose(fader(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-6, atol=1e-7)
    assert not fader.weight.requires_grad
    assert [fade_at(s, 4) for s in (0, 1, 2, 4, 9)] == [1.0, 0.75, 0.5, 0.0, 0.0]


def test_faded_student_is_the_prelu_net_at_the_start_and_a_relu_net_at_the_end() -> None:
    prelu = _prelu_student()
    relu = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="relu")
    faders = attach_faders(relu)
    assert len(faders) == sum(isinstance(m, torch.nn.PReLU) for m in prelu.modules())
    relu.load_state_dict(prelu.state_dict())  # the faders carry the PReLU keys
    relu.eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(relu(x), prelu(x))
        with pytest.raises(StudentConfigError, match="not faded out"):
            faded_state_dict(relu)
        set_fade(faders, 0.0)
        plain = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="relu")
        plain.load_state_dict(faded_state_dict(relu))  # strict: no slope keys left over
        assert torch.equal(plain.eval()(x), relu(x))
        cosine = torch.nn.functional.cosine_similarity(plain(x), prelu(x))
        assert cosine.max() < 0.999, cosine  # the slopes did matter


def test_shared_fader_follows_its_formula_in_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 3, 3)).astype(np.float32)
    a = rng.uniform(-0.5, 0.8, size=6).astype(np.float32)
    fader = FadingPReLU(6, shared=True)
    with torch.no_grad():
        fader.weight.copy_(torch.from_numpy(a))
    for source in (a, a - a.mean() + 0.004):  # a mean slope of 0.004 is below SNAP (0.01): the target is 0
        with torch.no_grad():
            fader.weight.copy_(torch.from_numpy(source))
        mean = float(np.mean(source.astype(np.float64)))
        target = mean if abs(mean) >= 0.01 else 0.0
        for lam in (1.0, 0.35, 0.0):
            fader.fade = lam
            slope = lam * source + (1.0 - lam) * target
            expected = np.maximum(x, 0) + slope[None, :, None, None] * np.minimum(x, 0)
            got = fader(torch.from_numpy(x)).detach().numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_faded_prelu1_student_ends_as_a_plain_one_slope_prelu_student() -> None:
    prelu = _prelu_student()
    shared = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="prelu1")
    faders = attach_faders(shared)
    assert all(f.shared for f in faders)
    shared.load_state_dict(prelu.state_dict())  # per-channel slopes load into the faders
    shared.eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(shared(x), prelu(x))
        set_fade(faders, 0.0)
        plain = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="prelu1")
        plain.load_state_dict(faded_state_dict(shared))  # strict: one slope per layer
        assert torch.equal(plain.eval()(x), shared(x))
    source = {k: v.numpy().astype(np.float64) for k, v in prelu.state_dict().items() if k.endswith(".2.weight")}
    for name, module in plain.named_modules():
        if isinstance(module, torch.nn.PReLU):
            assert module.num_parameters == 1
            mean = source[f"{name}.weight"].mean()
            np.testing.assert_allclose(module.weight.item(), mean if abs(mean) >= 0.01 else 0.0, rtol=1e-6)


def test_fading_refuses_other_activations() -> None:
    with pytest.raises(StudentConfigError, match="activation relu"):
        attach_faders(build_student("mobilefacenet", width=0.25, activation="relu6"))
    with pytest.raises(StudentConfigError, match="activation relu"):
        attach_faders(build_student("mobilefacenet", width=0.25, activation="prelu"))


def test_config_refuses_fading_without_slopes_or_past_the_run(data_dir) -> None:
    with pytest.raises(ConfigError, match="needs activation relu"):
        load_config(CI_CONFIG, ["student.fade_prelu_steps=10"])
    with pytest.raises(ConfigError, match=r"set init_from or student\.warm_start"):
        load_config(CI_CONFIG, ["student.activation=relu", "student.fade_prelu_steps=10"])
    with pytest.raises(ConfigError, match="> steps 50"):
        load_config(CI_CONFIG, ["student.activation=relu", "student.fade_prelu_steps=60", "init_from=x.pt"])


def test_a_fading_run_resumes_exactly_and_ends_as_a_plain_relu_student(tmp_path, aligned_glint) -> None:
    sets = [
        f"data.sources.0.path={aligned_glint}",
        "data.sources.0.limit_per_class=10",
        "batch_size=8",
        "log_period=1",
        "checkpoint.period=100",
    ]
    source = train(load_config(CI_CONFIG, [*sets, f"output_dir={tmp_path / 'p'}", "steps=3"]), progress=False)
    fade = [
        *sets,
        "steps=6",
        "student.activation=relu",
        "student.fade_prelu_steps=4",
        f"init_from={source.run_dir / 'checkpoints' / 'last.pt'}",
    ]
    straight = train(load_config(CI_CONFIG, [*fade, f"output_dir={tmp_path / 'a'}"]), progress=False)
    cfg_b = load_config(CI_CONFIG, [*fade, f"output_dir={tmp_path / 'b'}"])
    train(cfg_b, stop_at=3, progress=False)  # paused while λ = 0.25
    resumed = train(cfg_b, resume=True, progress=False)
    a, b = straight.student.state_dict(), resumed.student.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the slopes came from the PReLU run and stayed frozen while they faded
    src = source.student.state_dict()
    slopes = [k for k, m in straight.student.named_modules() if isinstance(m, FadingPReLU)]
    assert slopes and all(torch.equal(a[f"{k}.weight"], src[f"{k}.weight"]) for k in slopes)

    ckpt = load_checkpoint(straight.run_dir / "student.pt")
    assert ckpt["student_config"]["activation"] == "relu"
    assert not any(k in ckpt["student"] for k in (f"{s}.weight" for s in slopes))
    reloaded = load_student(straight.run_dir / "student.pt")
    assert not any(isinstance(m, torch.nn.PReLU) for m in reloaded.modules())
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(reloaded(x), straight.student.eval()(x))


def test_a_prelu1_run_continues_from_a_faded_checkpoint_with_its_slopes_frozen(tmp_path, aligned_glint) -> None:
    sets = [
        f"data.sources.0.path={aligned_glint}",
        "data.sources.0.limit_per_class=10",
        "batch_size=8",
        "log_period=1",
        "checkpoint.period=2",
        "checkpoint.keep=10",
    ]
    source = train(load_config(CI_CONFIG, [*sets, f"output_dir={tmp_path / 'p'}", "steps=2"]), progress=False)
    faded = train(
        load_config(
            CI_CONFIG,
            [
                *sets,
                f"output_dir={tmp_path / 'f'}",
                "steps=4",
                "student.activation=prelu1",
                "student.fade_prelu_steps=2",
                f"init_from={source.run_dir / 'checkpoints' / 'last.pt'}",
            ],
        ),
        progress=False,
    )
    cont = [*sets, "steps=3", "student.activation=prelu1", "student.freeze_slopes=true"]
    checkpoints = faded.run_dir / "checkpoints"
    # the fading run's periodic checkpoints hold per-channel slopes; one taken before λ reached 0 is refused
    mid = load_checkpoint(checkpoints / "last.pt")
    mid["step"] = 1
    torch.save(mid, tmp_path / "mid_fade.pt")
    with pytest.raises(ConfigError, match="still fading"):
        train(load_config(CI_CONFIG, [*cont, f"output_dir={tmp_path / 'x'}", f"init_from={tmp_path / 'mid_fade.pt'}"]))
    result = train(
        load_config(CI_CONFIG, [*cont, f"output_dir={tmp_path / 'c'}", f"init_from={checkpoints / 'last.pt'}"]),
        progress=False,
    )
    start = load_checkpoint(faded.run_dir / "student.pt")["student"]  # the faded run's own one-slope student
    end = result.student.state_dict()
    slopes = [f"{n}.weight" for n, m in result.student.named_modules() if isinstance(m, torch.nn.PReLU)]
    assert slopes and all(end[k].numel() == 1 and torch.equal(end[k], start[k]) for k in slopes)
    convs = [k for k in end if k.endswith("0.weight") and end[k].ndim == 4]
    assert any(not torch.equal(end[k], start[k]) for k in convs)  # the weights did train


def test_freeze_slopes_refuses_a_student_without_prelu() -> None:
    with pytest.raises(StudentConfigError, match="no PReLU"):
        freeze_slopes(build_student("mobilefacenet", width=0.25, activation="relu"))


def test_channel_slopes_keep_per_channel_prelus_that_do_not_fade() -> None:
    keep = ["stem.0.2", "stage8.1.0.block.0.2"]
    prelu = _prelu_student()
    hybrid = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="prelu1", channel_slopes=keep)
    modules = dict(hybrid.named_modules())
    assert hybrid.channel_slopes == tuple(keep)
    channels = {name: modules[name.rpartition(".")[0]][1].num_features for name in keep}
    assert all(modules[n].num_parameters == channels[n] > 1 for n in keep)
    faders = attach_faders(hybrid)
    assert len(faders) == sum(isinstance(m, torch.nn.PReLU) for m in prelu.modules()) - len(keep)
    hybrid.load_state_dict(prelu.state_dict())
    hybrid.eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(hybrid(x), prelu(x))  # λ = 1: the source network
        set_fade(faders, 0.0)
        state = faded_state_dict(hybrid)
        plain = build_student("mobilefacenet", embedding_size=64, width=0.25, activation="prelu1", channel_slopes=keep)
        plain.load_state_dict(state)  # strict: per-channel keys for the kept layers, one slope elsewhere
        assert torch.equal(plain.eval()(x), hybrid(x))
    source = prelu.state_dict()
    for name, module in plain.named_modules():
        if isinstance(module, torch.nn.PReLU):
            if name in keep:
                assert torch.equal(module.weight, source[f"{name}.weight"])
            else:
                mean = source[f"{name}.weight"].numpy().astype(np.float64).mean()
                np.testing.assert_allclose(module.weight.item(), mean if abs(mean) >= 0.01 else 0.0, rtol=1e-6)


def test_channel_slopes_are_refused_outside_a_prelu1_student(data_dir) -> None:
    with pytest.raises(StudentConfigError, match="prelu1 student"):
        build_student("mobilefacenet", width=0.25, activation="prelu", channel_slopes=["neck.2"])
    with pytest.raises(StudentConfigError, match="not an activation"):
        build_student("mobilefacenet", width=0.25, activation="prelu1", channel_slopes=["neck.1"])
    with pytest.raises(ConfigError, match="channel_slopes"):
        load_config(CI_CONFIG, ["student.channel_slopes=[neck.2]"])
