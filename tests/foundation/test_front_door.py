"""shared.engine front door (build_cfg / setup / train_or_evaluate), config checks and shared.registry."""
import ast
import argparse
from pathlib import Path

import pytest
import torch
from detectron2.config import CfgNode

import shared  # noqa: F401
from shared.engine import (
    AtomicCheckpointMixin,
    ConfigValueError,
    GenericTrainer,
    build_cfg,
    config_check,
    make_atomic,
    train_or_evaluate,
)
from shared.engine.validation import check_choice, check_positive, check_range
from shared.registry import choices_of, get_or_raise, register_as

REPO = Path(__file__).resolve().parents[2]
PROJECTS = ("SimD", "IIF", "AdaSP", "RDCD", "DAS")


def _add_toy_config(cfg: CfgNode) -> None:
    cfg.TOY = CfgNode()
    cfg.TOY.TEMP = 0.07
    cfg.TOY.MODE = "a"


@config_check(_add_toy_config)
def _check_toy(cfg) -> None:
    check_positive(cfg, "TOY.TEMP")
    check_choice(cfg, "TOY.MODE", ("a", "b"))


def test_build_cfg_adds_keys_merges_overrides_and_resolves_device():
    cfg = build_cfg(_add_toy_config, opts=["TOY.TEMP", "0.5"])  # the framework's "cuda" default becomes auto
    assert cfg.TOY.TEMP == 0.5
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    assert not cfg.is_frozen()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_build_cfg_refuses_cuda_without_a_gpu():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        build_cfg(_add_toy_config, opts=["MODEL.DEVICE", "cuda"])


@pytest.mark.parametrize("opts, key", [
    (["TOY.TEMP", "0.0"], "TOY.TEMP"),
    (["TOY.TEMP", "-0.04"], "TOY.TEMP"),
    (["TOY.TEMP", "1e400"], "TOY.TEMP"),  # inf
    (["TOY.MODE", "c"], "TOY.MODE"),
])
def test_registered_checks_run_when_the_config_is_built(opts, key):
    with pytest.raises(ConfigValueError, match=f"^{key}=") as info:
        build_cfg(_add_toy_config, opts=opts)
    assert info.value.key == key


def test_check_range_bounds():
    cfg = CfgNode({"A": CfgNode({"X": 1.0})})
    check_range(cfg, "A.X", low=0.0, high=1.0)
    with pytest.raises(ConfigValueError, match=r"\[0.0, 1.0\)"):
        check_range(cfg, "A.X", low=0.0, high=1.0, high_inclusive=False)
    cfg.A.X = True  # a bool is not a number here
    with pytest.raises(ConfigValueError):
        check_range(cfg, "A.X", low=0.0)


def test_fastreid_framework_switches_amp_off_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    cfg = build_cfg(lambda c: None, opts=["SOLVER.AMP.ENABLED", "True", "MODEL.DEVICE", "cpu"],
                    framework="fastreid")
    assert cfg.SOLVER.AMP.ENABLED is False
    with pytest.raises(KeyError, match="unknown framework 'mmdet'; choose one of"):
        build_cfg(lambda c: None, framework="mmdet")


def test_registry_helpers_on_dicts_and_fvcore_registries():
    from fvcore.common.registry import Registry

    reg = Registry("TOY")
    register_as(reg, "one_queue")(int)
    assert get_or_raise(reg, "one_queue", "MODEL.X") is int
    with pytest.raises(KeyError, match=r"unknown MODEL.X 'two'; choose one of \['one_queue'\]"):
        get_or_raise(reg, "two", "MODEL.X")
    with pytest.raises(AssertionError):  # a second registration under the same name is refused
        register_as(reg, "one_queue")(float)
    table = {}
    register_as(table, "b")(str)
    register_as(table, "a")(int)
    assert choices_of(table) == ["a", "b"]
    with pytest.raises(KeyError):
        register_as(table, "a")(float)


def test_make_atomic_keeps_the_object_and_its_state(tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    model = torch.nn.Linear(2, 2)
    ckpt = DetectionCheckpointer(model, str(tmp_path))
    same = make_atomic(ckpt)
    assert same is ckpt
    assert isinstance(ckpt, AtomicCheckpointMixin) and isinstance(ckpt, DetectionCheckpointer)
    assert make_atomic(ckpt).__class__ is ckpt.__class__  # idempotent
    ckpt.save("m")
    assert (tmp_path / "last_checkpoint").read_text() == "m.pth"


class _ToyTrainer(GenericTrainer):
    @classmethod
    def build_model(cls, cfg):
        return torch.nn.Linear(2, 2)

    @classmethod
    def test(cls, cfg, model):
        return {"toy": {"weight_sum": float(model.weight.sum())}}


def test_eval_only_without_weights_is_refused(tmp_path):
    cfg = build_cfg(lambda c: None, opts=["OUTPUT_DIR", str(tmp_path), "MODEL.DEVICE", "cpu"])
    args = argparse.Namespace(eval_only=True, resume=False)
    with pytest.raises(ValueError, match="--eval-only needs weights"):
        train_or_evaluate(_ToyTrainer, cfg, args)


def test_eval_only_loads_weights_through_the_trainer_checkpointer(tmp_path):
    model = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(model.weight, 0.25)
    weights = tmp_path / "w.pth"
    torch.save({"model": model.state_dict()}, weights)
    cfg = build_cfg(lambda c: None, opts=["OUTPUT_DIR", str(tmp_path), "MODEL.WEIGHTS", str(weights),
                                          "MODEL.DEVICE", "cpu"])
    results = train_or_evaluate(_ToyTrainer, cfg, argparse.Namespace(eval_only=True, resume=False))
    assert results == {"toy": {"weight_sum": pytest.approx(1.0)}}


@pytest.mark.parametrize("project", PROJECTS)
def test_every_train_net_goes_through_the_front_door(project):
    """Each train_net.py: setup(args, add_<x>_config ...) then train_or_evaluate(<X>Trainer, cfg, args), and
    launched by launch_from_args(main, default_argument_parser().parse_args())."""
    path = REPO / "projects" / project / "train_net.py"
    tree = ast.parse(path.read_text())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    assert len(main.body) == 2
    first, second = main.body
    assert isinstance(first, ast.Assign) and first.value.func.id == "setup"
    assert first.value.args[1].id.startswith("add_") and first.value.args[1].id.endswith("_config")
    assert isinstance(second, ast.Return) and second.value.func.id == "train_or_evaluate"
    assert second.value.args[0].id.endswith("Trainer")
    guard = tree.body[-1]
    assert isinstance(guard, ast.If)
    assert ast.unparse(guard.body[0]) == "launch_from_args(main, default_argument_parser().parse_args())"
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["main"]
