"""The trainer on real data: 300 Glint crops re-aligned with YuNet + align_face, the faceplugin teacher.

A short run shows the loss falling and leaves a checkpoint that reloads to identical outputs; N steps straight
equal N/2 + resume + N/2 bit for bit; every loss kind builds and back-propagates on a real batch; the config
loader types overrides and refuses unknown keys.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shrinkface.runtime import lfw  # noqa: E402
from shrinkface.runtime.dataset import AlignSettings, align_folder  # noqa: E402
from shrinkface.train.checkpoint import load_checkpoint, load_student  # noqa: E402
from shrinkface.train.config import ConfigError, LossConfig, expand_path, load_config  # noqa: E402
from shrinkface.train.data import BatchDataset, to_input  # noqa: E402
from shrinkface.train.evaluate import subset_pairs  # noqa: E402
from shrinkface.train.objective import BatchView, TrainModule, build_objective  # noqa: E402
from shrinkface.train.prepare import prepare  # noqa: E402
from shrinkface.train.trainer import initialise_from, lr_factor, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CI_CONFIG = REPO / "configs" / "ci_tiny.yaml"


@pytest.fixture(scope="module")
def aligned_lfw_subset(tmp_path_factory, lfw_dir: Path) -> Path:
    """Aligned crops of the images of a 40-pair LFW subset (evaluation only)."""
    pairs = subset_pairs(lfw.parse_pairs(lfw_dir / "pairs.txt"), 40)
    src = tmp_path_factory.mktemp("lfw_src")
    for key in pairs.image_keys:
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).symlink_to(lfw_dir / "images" / key)
    dst = tmp_path_factory.mktemp("lfw_aligned")
    align_folder(src, dst, AlignSettings(), workers=0, progress=False)
    return dst


def _cfg(aligned: Path, out: Path, *sets: str):
    return load_config(CI_CONFIG, [f"data.sources.0.path={aligned}", f"output_dir={out}", *sets])


def _fixed_batch_loss(student, objective, batch) -> float:
    """The objective on one fixed, un-augmented real batch (batch-statistics BN, no gradient)."""
    import copy

    student, objective = copy.deepcopy(student).train(), copy.deepcopy(objective)
    with torch.no_grad():
        emb = student(to_input(batch["images"]))
        return float(objective(BatchView({"embedding": emb}, batch["labels"], batch["targets"], {}))[0])


def test_short_run_loss_falls_and_checkpoint_reloads(tmp_path, aligned_glint, aligned_lfw_subset) -> None:
    cfg = _cfg(
        aligned_glint,
        tmp_path,
        "eval.period=50",
        f"eval.lfw_aligned={aligned_lfw_subset}",
        "eval.max_pairs=40",
    )
    result = train(cfg, argv=["pytest", "ci_tiny"], progress=False)
    assert result.step == 50
    rows = [r for r in result.history if "loss" in r]
    assert [r["step"] for r in rows] == list(range(5, 55, 5))
    assert all(r["images_per_s"] > 0 and math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["adl"] < rows[0]["adl"] - 0.1  # the student turns toward the teacher

    # the same objective on one fixed real batch, at the trainer's initialisation and after training
    prep = prepare(cfg, progress=False)
    batch = BatchDataset(prep.pack, prep.trainset.labels, prep.targets, None)[(list(range(0, 300, 5)), 0)]
    from shrinkface.train.students import build_student

    torch.manual_seed(cfg.seed)  # the trainer's initialisation, rebuilt independently
    student0 = build_student(**cfg.student.build_args())
    objective0 = build_objective(cfg.losses, student0, prep.teachers, prep.cached, prep.trainset.labels, 6)
    before = _fixed_batch_loss(student0, objective0, batch)
    after = _fixed_batch_loss(result.student, result.objective, batch)
    assert after < 0.9 * before, (before, after)  # 0.78 measured

    evals = [r for r in result.history if r.get("event") == "eval"]
    assert len(evals) == 1 and evals[0]["lfw_pairs"] == 40 and 0.0 <= evals[0]["lfw_acc"] <= 1.0
    run = result.run_dir
    assert (run / "command.txt").read_text().strip().endswith("pytest ci_tiny")
    assert load_config(run / "config.yaml") == cfg
    assert (run / "log.jsonl").read_text().count("\n") == len(result.history)
    report = (run / "data_report.json").read_text()
    assert '"excluded_identities": []' in report and '"identities": 6' in report

    x = to_input(batch["images"][:8])
    reloaded = load_student(run / "student.pt")
    with torch.no_grad():
        assert torch.equal(reloaded(x), result.student.eval()(x))
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["step"] == 50 and ckpt["batch"] == 50 % 18
    assert all(torch.equal(v, result.student.state_dict()[k]) for k, v in ckpt["student"].items())


def _pack(cfg) -> Path:
    return prepare(cfg, progress=False).pack


def test_resume_is_exact(tmp_path, aligned_glint) -> None:
    sets = (
        "steps=6",
        "batch_size=8",
        "log_period=1",
        "checkpoint.period=100",
        "data.sources.0.limit_per_class=10",
    )
    straight = train(_cfg(aligned_glint, tmp_path / "a", *sets), progress=False)
    cfg_b = _cfg(aligned_glint, tmp_path / "b", *sets)
    paused = train(cfg_b, stop_at=3, progress=False)
    assert paused.step == 3 and not (paused.run_dir / "student.pt").exists()
    resumed = train(cfg_b, resume=True, progress=False)
    assert resumed.step == 6
    for part in ("student", "objective"):
        a, b = getattr(straight, part).state_dict(), getattr(resumed, part).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    losses_a = [r["loss"] for r in straight.history if "loss" in r]
    losses_b = [r["loss"] for r in paused.history + resumed.history if "loss" in r]
    assert losses_a == losses_b
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg_b, progress=False)  # the run exists: refuse to overwrite it
    # paused inside a log window: the resumed run's first row averages only the steps it ran (step 4 alone)
    cfg_w = _cfg(aligned_glint, tmp_path / "w", *sets[:2], "log_period=4", *sets[3:])
    train(cfg_w, stop_at=3, progress=False)
    first = next(r for r in train(cfg_w, resume=True, progress=False).history if "loss" in r)
    assert first["step"] == 4 and first["loss"] == losses_a[3]

    # a later stage starts from this run (Wang et al.'s initialisation trick maps a classifier across terms)
    ckpt = resumed.run_dir / "checkpoints" / "last.pt"
    cfg_c = _cfg(
        aligned_glint,
        tmp_path / "c",
        *sets,
        f"init_from={ckpt}",
        "init_map={terms.arc2.loss.weight: terms.arcface.loss.weight}",
    )
    cfg_c.losses = {"arc2": cfg_c.losses["arcface"], "adl": cfg_c.losses["adl"]}
    prep = prepare(cfg_c, progress=False)
    from shrinkface.train.students import build_student

    student = build_student(**cfg_c.student.build_args())
    objective = build_objective(cfg_c.losses, student, prep.teachers, prep.cached, prep.trainset.labels, 6)
    module = TrainModule(student, objective)
    initialise_from(cfg_c, module)
    assert all(torch.equal(v, resumed.student.state_dict()[k]) for k, v in student.state_dict().items())
    trained = resumed.objective.state_dict()
    assert torch.equal(objective.terms["arc2"].loss.weight, trained["terms.arcface.loss.weight"])
    assert torch.equal(
        objective.terms["adl"].adl["faceplugin"].projection.linear.weight,
        trained["terms.adl.adl.faceplugin.projection.linear.weight"],
    )


def test_every_loss_kind_builds_and_backpropagates(tmp_path, aligned_glint) -> None:
    cfg = _cfg(aligned_glint, tmp_path)
    prep = prepare(cfg, progress=False)
    from shrinkface.train.students import build_student

    student = build_student("mobilefacenet", width=0.25)
    kinds = {
        "arcface": LossConfig("arcface"),
        "cosface": LossConfig("cosface", params={"m": 0.35}),
        "adl": LossConfig("adl"),
        "adl_cat": LossConfig("adl", params={"ensemble": "concat", "squared": True}),
        "sd": LossConfig("sample_distribution"),
        "md": LossConfig("margin_distillation"),
        "mimic": LossConfig("neuron_mimic", params={"k": 32}),
        "kd": LossConfig("wang_kd"),
        "kd_hard": LossConfig("wang_kd", params={"alpha": 0.5}),
        "mrd": LossConfig("mutual_relation", params={"k": 4}),
    }
    labels = prep.trainset.labels
    objective = build_objective(kinds, student, prep.teachers, prep.cached, labels, prep.trainset.num_classes)
    # class centres: normalised mean teacher embedding per identity, computed here with numpy
    t = prep.cached["faceplugin"]
    want = np.stack([t[labels == c].mean(0) for c in range(6)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(objective.terms["md"].loss.centres.numpy(), want, atol=1e-5)
    assert objective.terms["mimic"].loss.head.out_features <= 32

    ds = BatchDataset(prep.pack, labels, prep.targets, cfg.data.augment)
    batch = ds[(list(range(0, 300, 19)), 0)]
    emb = student(to_input(batch["images"]))
    view = BatchView({"embedding": emb}, batch["labels"], batch["targets"], {}, batch["index"])
    total, parts = objective(view)
    assert set(parts) == set(kinds) and all(math.isfinite(float(v)) for v in parts.values())
    total.backward()
    assert student.head.linear.weight.grad.abs().sum() > 0
    bad = {"x": LossConfig("adl", params={"nope": 1})}
    with pytest.raises(ConfigError, match="unknown params"):
        build_objective(bad, student, prep.teachers, prep.cached, labels, 6)
    with pytest.raises(ConfigError, match="unknown kind"):
        build_objective({"x": LossConfig("triplet")}, student, prep.teachers, prep.cached, labels, 6)
    with pytest.raises(ConfigError, match="needs an `adl` term"):
        build_objective({"m": LossConfig("mutual_relation")}, student, prep.teachers, prep.cached, labels, 6)
    # mined negatives: never the same identity, and the term is read at the rows' own indices
    negatives = objective.terms["mrd"].negatives.numpy()
    assert negatives.shape == (len(labels), 4) and not (labels[negatives] == labels[:, None]).any()


def test_mutual_relation_trains_through_the_trainer(tmp_path, aligned_glint) -> None:
    """The trainer hands each batch's training-set indices to the relation term (a run of 3 steps)."""
    cfg = _cfg(aligned_glint, tmp_path, "steps=3", "batch_size=8", "log_period=1", "data.sources.0.limit_per_class=10")
    cfg.losses = {"adl": LossConfig("adl"), "mrd": LossConfig("mutual_relation", weight=4.0, params={"k": 8})}
    rows = [r for r in train(cfg, progress=False).history if "loss" in r]
    assert len(rows) == 3 and all(
        0 < r["mrd"] < 1 and r["loss"] == pytest.approx(r["adl"] + 4 * r["mrd"], rel=1e-4) for r in rows
    )


def test_white_box_teacher_drives_intermediate_distillation(tmp_path, aligned_glint) -> None:
    cfg = _cfg(
        aligned_glint,
        tmp_path,
        "teachers.0.kind=whitebox",
        "teachers.0.features=[s4, s8, s16]",
        "steps=3",
        "batch_size=8",
        "log_period=1",
        "data.sources.0.limit_per_class=10",
    )
    cfg.losses = {"arcface": cfg.losses["arcface"], "adl_int": LossConfig("adl_intermediate", params={})}
    result = train(cfg, progress=False)
    rows = [r for r in result.history if "loss" in r]
    assert len(rows) == 3 and all(math.isfinite(r["adl_int"]) and 0 < r["adl_int"] <= 2 for r in rows)
    adapters = result.objective.terms["adl_int"].loss["faceplugin"].adapters
    assert {k: tuple(a.weight.shape) for k, a in adapters.items()} == {
        "s4": (64, 16, 1, 1),
        "s8": (128, 32, 1, 1),
        "s16": (128, 32, 1, 1),
    }


def test_white_box_cache_is_filled_only_when_a_term_reads_it(tmp_path, aligned_glint) -> None:
    """A white-box teacher runs online, so ADL/SD alone fill no cache for it; margin distillation (class centres
    from the cache) does. A black-box teacher is always cached."""
    from shrinkface.train.objective import teachers_needing_cache

    cfg = _cfg(aligned_glint, tmp_path, "teachers.0.kind=whitebox", "data.sources.0.limit_per_class=5")
    cfg.cache_dir = str(tmp_path / "cache")
    cfg.losses = {"adl": LossConfig("adl"), "sd": LossConfig("sample_distribution")}
    prep = prepare(cfg, progress=False)
    assert prep.targets == {} and prep.cached == {}
    assert not list((tmp_path / "cache" / "train" / "teachers").glob("*"))
    cfg.losses["md"] = LossConfig("margin_distillation")
    prep = prepare(cfg, progress=False)
    assert set(prep.targets) == {"faceplugin"} and prep.cached["faceplugin"].shape == (len(prep.trainset), 512)
    names = ["a", "b", "c"]
    losses = {"k": LossConfig("wang_kd", teachers=["b", "c"]), "n": LossConfig("neuron_mimic", teachers=["a", "c"])}
    assert teachers_needing_cache(losses, names) == {"a", "b", "c"}  # wang_kd: its first; neuron_mimic: all
    assert teachers_needing_cache({"k": losses["k"]}, names) == {"b"}
    assert teachers_needing_cache({"r": LossConfig("mutual_relation", teachers=["a", "b"])}, names) == {"a", "b"}
    assert teachers_needing_cache({"m": LossConfig("margin_distillation"), "a": LossConfig("adl")}, names) == {"a"}


def test_schedule_warms_up_then_follows_a_cosine() -> None:
    total, warm = 100, 10
    assert lr_factor(0, total, 0.1, 0.01, 0.0) == pytest.approx(0.01)
    assert lr_factor(5, total, 0.1, 0.01, 0.0) == pytest.approx(0.01 + 0.99 * 0.5)
    for k in (10, 40, 77, 100):
        want = 0.5 * (1 + math.cos(math.pi * (k - warm) / (total - warm)))
        assert lr_factor(k, total, 0.1, 0.01, 0.0) == pytest.approx(want)
    assert lr_factor(100, total, 20, 0.0, 0.1) == pytest.approx(0.1)  # floor, warm-up given in steps


def test_config_overrides_are_typed_and_unknown_keys_refused(data_dir) -> None:
    cfg = load_config(
        CI_CONFIG,
        [
            "optim.lr=0.01",
            "steps=7",
            "losses.adl.weight=2",
            "teachers.0.weight=0.5",
            "channels_last=false",
            "optim.betas=[0.8, 0.9]",
            "optim.grad_clip=none",
            "losses.arcface.params.m=0.4",
            "eval.max_pairs=null",
        ],
    )
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float) and cfg.steps == 7
    assert cfg.losses["adl"].weight == 2.0 and cfg.teachers[0].weight == 0.5 and cfg.channels_last is False
    assert cfg.optim.betas == (0.8, 0.9) and cfg.optim.grad_clip is None and cfg.eval.max_pairs is None
    assert cfg.losses["arcface"].params["m"] == 0.4
    cases = {
        "optim.lrr=1": "unknown key 'optim.lrr'",
        "steps=ten": "cannot read 'ten' as int",
        "optim.name=adam": "not one of",
        "teachers.3.weight=1": "index out of range",
        "losses.nope.weight=1": "missing required key",
        "student.width.x=1": "has no sub-keys",
        "seed": "must look like",
        "teachers.0.target=mean": "not one of",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_config(CI_CONFIG, [override])
    assert load_config(CI_CONFIG, ["teachers.0.target=flip_mean"]).teachers[0].target == "flip_mean"
    with pytest.raises(ConfigError, match="flip_mean needs a blackbox"):
        load_config(CI_CONFIG, ["teachers.0.target=flip_mean", "teachers.0.kind=whitebox"])


def test_bad_yaml_content_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: 5\nlosses: {a: {kind: adl}}\ndata: {sources: [{path: p}], colour: 1}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\] in data"):
        load_config(bad)
    bad.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("name: x\nsteps: 5\nepochs: 2\nlosses: {a: {kind: adl}}\ndata: {sources: [{path: p}]}\n")
    with pytest.raises(ConfigError, match="exactly one of"):
        load_config(bad)


def test_paths_expand_variables_and_default_only_the_aligned_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SHRINKFACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SHRINKFACE_ALIGNED", raising=False)
    monkeypatch.delenv("SHRINKFACE_NOT_A_VAR", raising=False)
    assert expand_path("${SHRINKFACE_ALIGNED}/glint") == tmp_path / "cache" / "aligned" / "glint"
    monkeypatch.setenv("SHRINKFACE_ALIGNED", str(tmp_path / "mine"))
    assert expand_path("$SHRINKFACE_ALIGNED/lfw") == tmp_path / "mine" / "lfw"
    with pytest.raises(ConfigError, match=r"uses \$\{SHRINKFACE_NOT_A_VAR\}, which is not set"):
        expand_path("${SHRINKFACE_NOT_A_VAR}/x")


def test_cli_reports_a_bad_override_with_the_usage_exit_code(data_dir) -> None:
    env = dict(os.environ, SHRINKFACE_DATA=str(data_dir))
    done = subprocess.run(
        [sys.executable, "-m", "shrinkface.train.cli", str(CI_CONFIG), "--set", "optim.lrr=1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "unknown key 'optim.lrr'" in done.stderr


def test_bad_teachers_are_clear_model_errors() -> None:
    from shrinkface.runtime.errors import ModelError
    from shrinkface.train.config import TeacherConfig
    from shrinkface.train.teachers import build_teacher

    with pytest.raises(ModelError, match="neither an asset name"):
        build_teacher(TeacherConfig(name="t", asset="no_such_teacher"))
    with pytest.raises(ModelError, match="exposes no features"):
        build_teacher(TeacherConfig(name="t", asset="faceplugin", features=["s4"]))
    with pytest.raises(ModelError, match="no graph node 'Conv_999'"):
        build_teacher(TeacherConfig(name="t", asset="faceplugin", kind="whitebox", features=["Conv_999"]))


def test_whitebox_embedding_flushes_subnormals() -> None:
    """The white-box teacher's embedder must run with flush-to-zero (faceplugin's subnormal activations made the
    cache fill 6–7× slower), in a cache worker (``whitebox_embedder``) and in process (``build_teacher``), even
    after a black-box teacher's ONNX Runtime session cleared the flag. In a fresh process: a subnormal float32
    product survives before each embed call and is 0 after it."""
    code = (
        "import numpy as np, torch\n"
        "from shrinkface.train.config import TeacherConfig\n"
        "from shrinkface.train.teachers import build_teacher, whitebox_embedder\n"
        "crops = np.zeros((2, 112, 112, 3), np.uint8)\n"
        "x = torch.tensor([1e-40])\n"
        "for make in (lambda: whitebox_embedder('faceplugin'),\n"
        "             lambda: build_teacher(TeacherConfig(name='c', asset='faceplugin', kind='whitebox')).embedder):\n"
        "    embedder = make()\n"
        "    build_teacher(TeacherConfig(name='a', asset='sface'))  # an ONNX Runtime session\n"
        "    torch.set_flush_denormal(False)\n"
        "    before = float(x * 1.0)\n"
        "    embedder.embed(crops)\n"
        "    print(before, float(x * 1.0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    values = [float(v) for v in out[-4:]]
    assert values[0] > 0 and values[1] == 0.0  # cache worker
    assert values[2] > 0 and values[3] == 0.0  # in process


def test_evaluator_tar_matches_a_brute_force_all_pairs_roc(aligned_lfw_subset) -> None:
    """TAR at FAR over every pair of the evaluated crops, against sklearn's ROC of the explicit pair list."""
    from itertools import combinations

    from sklearn.metrics import roc_curve

    from shrinkface.train.config import EvalConfig
    from shrinkface.train.evaluate import LfwEvaluator, embed_crops
    from shrinkface.train.students import build_student

    torch.manual_seed(0)
    student = build_student(arch="mobilefacenet", embedding_size=64, width=0.25, activation="prelu").eval()
    cfg = EvalConfig(lfw_aligned=str(aligned_lfw_subset), max_pairs=40, flip=False, tar_far=0.01)
    evaluator = LfwEvaluator(cfg, torch.device("cpu"))
    result = evaluator(student)

    emb = embed_crops(student, evaluator.crops, torch.device("cpu"), flip=False)
    names = [k.split("/")[0] for k, ok in zip(evaluator.keys, evaluator.have, strict=True) if ok]
    ij = list(combinations(range(len(names)), 2))
    scores = np.array([float(emb[i] @ emb[j]) for i, j in ij])
    same = np.array([names[i] == names[j] for i, j in ij])
    fpr, tpr, _ = roc_curve(same, scores)
    n_imp = int((~same).sum())
    allowed = np.floor(0.01 * n_imp) / n_imp
    assert result["tar_impostor_pairs"] == n_imp and n_imp > 1000
    assert result["tar"] == pytest.approx(float(tpr[fpr <= allowed + 1e-12].max()), abs=1e-5)
