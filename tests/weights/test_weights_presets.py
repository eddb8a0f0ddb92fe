"""Every official preset starts from the published weights its official run starts from, through the weights
catalog, and never from random initialisation unless the official run does; each converter produces exactly
the tensors the model part it initialises expects (a strict load) from a state dict in the official layout.

The presets are read as yaml (their ``_BASE_`` chain merged as yacs does), which is fast; the provenance
tests of each project build them with the config system.
"""
import glob
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import torch
import torchvision
import yaml

from shared.weights import (CATALOG, CONVERTERS, InitialWeightsError, check_initial_weights, entry_for_file,
                            get_entry, initial_weights, parse_uri, resolve)
from shared.weights.converters import bninception_to_das, sscd_torchscript_to_rdcd

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: official presets whose official run trains from random weights (MODEL.FROM_SCRATCH True), and why
OFFICIAL_FROM_SCRATCH = {
    "IIF/configs/classification/cifar100_lt_se_resnet32.yaml": "official train.py --pretrained None",
    "IIF/configs/classification/imagenet_lt_se_resnet50.yaml": "official train.py --pretrained None",
    "RDCD/configs/DISC21/sscd_r50.yaml": "SSCD sscd/models/model.py:38 builds the trunk without weights",
    "RDCD/configs/DISC21/sscd_effb0.yaml": "as sscd_r50.yaml",
}
#: official presets whose initial weights have no published digest (not in the catalog): the user passes a
#: local file, and training refuses to start without it
NO_PUBLISHED_FILE = {
    "IIF/configs/classification/places_lt_se_resnet152.yaml": "the official run pretrains SE-ResNet-152 on "
                                                              "ImageNet itself (classification/README.md:81)",
    "RDCD/configs/DISC21/rdcd_effb0_256_dino.yaml": "dino_vitbase8_pretrain.pth: no published sha256",
}
#: parts left to a local file inside presets that otherwise start from catalog weights
LOCAL_PART = {
    "RDCD/configs/DISC21/rdcd_fastvit_256.yaml":
        "MODEL.RDCD.STUDENT_WEIGHTS (timm fastvit_t12.apple_in1k: no published sha256)",
}


def _is_official(rel: str) -> bool:
    name = os.path.basename(rel)
    folders = [part.lower() for part in rel.split("/")[:-1]]
    # synthetic/, synthetic_demo/: the CPU demos' presets, trained from scratch on purpose
    return not (name.startswith("Base-") or any(f.startswith("synthetic") for f in folders)
                or name.startswith("synthetic_"))


_ALL = glob.glob(os.path.join(REPO, "projects", "*", "configs", "**", "*.y*ml"), recursive=True)
OFFICIAL = sorted(rel for rel in (os.path.relpath(p, os.path.join(REPO, "projects")) for p in _ALL)
                  if _is_official(rel))


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


def merged_yaml(path: str) -> dict:
    """The keys a preset sets, its ``_BASE_`` chain merged below it (yacs' order)."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    merged: dict = {}
    bases = data.pop("_BASE_", None) or []
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _merge(merged, merged_yaml(os.path.join(os.path.dirname(path), base)))
    return _merge(merged, data)


class _Node(dict):
    """A nested dict with attribute access, enough for :func:`initial_weights`."""

    def __getattr__(self, name):
        if name not in self:
            raise AttributeError(name)
        value = self[name]
        return _Node(value) if isinstance(value, dict) else value


def test_the_official_presets_are_found():
    projects = {rel.split("/")[0] for rel in OFFICIAL}
    assert projects == {"SimD", "IIF", "AdaSP", "RDCD", "DAS"}
    assert len(OFFICIAL) >= 90
    for rel in list(OFFICIAL_FROM_SCRATCH) + list(NO_PUBLISHED_FILE) + list(LOCAL_PART):
        assert rel in OFFICIAL, rel


@pytest.mark.parametrize("rel", OFFICIAL)
def test_official_preset_starts_from_catalog_weights_never_random(rel):
    cfg = _Node(merged_yaml(os.path.join(REPO, "projects", rel)))
    values = {k: v for k, v in initial_weights(cfg).items() if v}
    scratch = bool(cfg.get("MODEL", {}).get("FROM_SCRATCH", False))
    assert scratch == (rel in OFFICIAL_FROM_SCRATCH), f"{rel}: MODEL.FROM_SCRATCH {scratch}"
    if rel in OFFICIAL_FROM_SCRATCH:
        return
    if rel in NO_PUBLISHED_FILE:
        assert not values
        with pytest.raises(InitialWeightsError, match="MODEL.FROM_SCRATCH True"):
            check_initial_weights(cfg)
        return
    assert values, f"{rel} names no initial weights"
    check_initial_weights(cfg)
    for key, value in values.items():
        if value.startswith("weights://"):
            name, layout = parse_uri(value)
            entry = get_entry(name)  # a catalog entry with a verifiable digest (the catalog refuses others)
            assert entry.sha256 or entry.hash_prefix
            assert not layout or (entry.format, layout) in CONVERTERS, value
        elif value.startswith("detectron2://"):
            assert "LVIS-InstanceSegmentation-MSRA" in rel, f"{rel}: {key} {value}"
        else:  # the previous stage's output (decoupled classifier training)
            assert key == "MODEL.WEIGHTS" and value.startswith("output/") and "decoupled" in rel, value


def test_presets_name_the_official_files():
    def weights(rel, key):
        node = merged_yaml(os.path.join(REPO, "projects", rel))
        for part in key.split("."):
            node = node[part]
        return node

    tv = "weights://torchvision/resnet50-0676ba61#detectron2"
    assert weights("SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml", "MODEL.WEIGHTS") == tv
    assert weights("IIF/configs/LVIS-InstanceSegmentation/mask_rcnn_R_50_FPN_softmax_1x.yaml",
                   "MODEL.WEIGHTS") == tv
    assert weights("IIF/configs/LVIS-InstanceSegmentation-MSRA/mask_rcnn_R_50_FPN_softmax_1x.yaml",
                   "MODEL.WEIGHTS") == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    ibn = "weights://ibn-net/resnet50_ibn_a-d9d0bb7b"
    for rel in ("AdaSP/configs/Market1501/mgn_R50-ibn_adasp.yml", "AdaSP/configs/VeRi/sbs_R50-ibn_adasp.yml",
                "AdaSP/configs/VehicleID/bagtricks_R50-ibn_adasp.yml",
                "AdaSP/configs/Market1501/mgn_R50_ce_adasp.yml"):  # the official Market CE run: IBN file too
        assert weights(rel, "MODEL.BACKBONE.PRETRAIN") is True
        assert weights(rel, "MODEL.BACKBONE.PRETRAIN_PATH") == ibn
    assert weights("DAS/configs/CUB200/multi_similarity.yaml",
                   "MODEL.EMBEDDING.BACKBONE_WEIGHTS") == "weights://torchvision/resnet50-19c8e357"
    assert weights("DAS/configs/SOP/multi_similarity_bninception512_table1.yaml",
                   "MODEL.EMBEDDING.BACKBONE_WEIGHTS") == "weights://cadene/bn_inception-52deb4733#das"
    assert weights("RDCD/configs/DISC21/rdcd_effb0_64.yaml",
                   "MODEL.RDCD.TEACHER_WEIGHTS") == "weights://sscd/sscd_disc_mixup.torchscript#rdcd"


def test_catalog_entries_cite_the_official_code_and_are_found_by_file_name():
    for name, entry in CATALOG.items():
        assert re.search(r"\.\w+:\d+", entry.source), f"{name}: no file:line in {entry.source!r}"
        assert entry_for_file(f"/somewhere/{entry.filename}") is entry
        if entry.hash_prefix:  # torch.hub's convention: the digest prefix is in the file name
            assert f"-{entry.hash_prefix}" in entry.filename


def test_training_without_weights_is_refused_naming_the_keys():
    cfg = _Node(merged_yaml(os.path.join(REPO, "projects", "SimD", "configs", "aitod",
                                         "faster_rcnn_R_50_FPN_1x_iou.yaml")))
    cfg["MODEL"]["WEIGHTS"] = ""
    with pytest.raises(InitialWeightsError, match=r"MODEL\.WEIGHTS.*MODEL\.FROM_SCRATCH True"):
        check_initial_weights(cfg)
    cfg["MODEL"]["FROM_SCRATCH"] = True
    check_initial_weights(cfg)


def test_rdcd_fastvit_student_needs_weights_unless_from_scratch():
    from rdcd.modeling.meta_arch import check_student_weights

    with pytest.raises(ValueError, match="MODEL.RDCD.STUDENT_WEIGHTS"):
        check_student_weights("fastvit_t12", "", from_scratch=False)
    check_student_weights("fastvit_t12", "", from_scratch=True)
    check_student_weights("efficientnet_b0", "", from_scratch=False)  # the official CNN students start random


# ------------------------------------------------------------------------------- converters, strict loads
def _bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _official_bninception_state():
    """pretrainedmodels' BN-Inception layout: our module's names (the same), BN tensors as [1, C] like the
    Caffe-converted file, plus its 1000-class ``last_linear``; no ``num_batches_tracked``."""
    from das.modeling.bninception import BNInception

    state = {}
    for key, value in BNInception().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state[key] = value[None] if "_bn." in key else value
    state["last_linear.weight"] = torch.randn(1000, 1024)
    state["last_linear.bias"] = torch.randn(1000)
    return state


def test_bninception_file_downloads_converts_and_loads_into_the_das_backbone(weights_server):
    from das.modeling.meta_arch import build_backbone

    server, serve = weights_server
    state = _official_bninception_state()
    assert state["conv1_7x7_s2_bn.weight"].shape == (1, 64)
    serve("test/bn_inception", _bytes(state), fmt="cadene-bninception")
    backbone = build_backbone("bninception", "weights://test/bn_inception#das")  # strict: every key, shape
    assert torch.equal(backbone.conv1_7x7_s2_bn.weight, state["conv1_7x7_s2_bn.weight"][0])
    assert torch.equal(backbone.inception_5b_pool_proj.weight, state["inception_5b_pool_proj.weight"])
    converted = bninception_to_das(state)
    assert set(converted) == {k for k in backbone.state_dict() if not k.endswith("num_batches_tracked")}


def test_torchvision_r50_file_loads_into_the_das_timm_backbone(weights_server, tmp_path):
    from das.modeling.meta_arch import build_backbone

    server, serve = weights_server
    state = torchvision.models.resnet50(weights=None).state_dict()  # the official key layout (with fc)
    serve("test/resnet50", _bytes(state))
    backbone = build_backbone("resnet50", "weights://test/resnet50")
    own = backbone.state_dict()
    assert set(own) == {k for k in state if not k.startswith("fc.")}  # every backbone tensor, no classifier
    assert all(torch.equal(own[k], state[k]) for k in own)


def test_sscd_torchscript_converts_into_the_rdcd_teacher_strictly():
    from rdcd.modeling.networks import build_network, load_state_into

    torch.manual_seed(0)
    # SSCD's model: a torchvision ResNet-50 (fc -> 512) as ``backbone`` (sscd/models/model.py)
    official = {f"backbone.{k}": v for k, v in
                torchvision.models.resnet50(weights=None, num_classes=512).state_dict().items()}
    teacher = build_network("sscd_r50", out_dim=512)
    state = sscd_torchscript_to_rdcd(official)
    assert set(state) == set(teacher.state_dict())
    load_state_into(teacher, state, "sscd_disc_mixup")  # strict: missing / unexpected / shapes are errors
    assert torch.equal(teacher.layer4[2].bn3.running_var, official["backbone.layer4.2.bn3.running_var"])
    with pytest.raises(ValueError, match="outside 'backbone"):
        sscd_torchscript_to_rdcd({"model.fc.weight": torch.zeros(1)})


def test_sscd_torchscript_file_end_to_end_through_the_teacher_key(weights_server):
    """A TorchScript file (as SSCD publishes) served on loopback: MODEL.RDCD.TEACHER_WEIGHTS resolves it."""
    from rdcd.modeling.networks import build_network, load_network_weights

    server, serve = weights_server

    class Sscd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torchvision.models.resnet18(weights=None, num_classes=512)

        def forward(self, x):
            return torch.nn.functional.normalize(self.backbone(x))

    scripted = torch.jit.trace(Sscd().eval(), torch.zeros(1, 3, 32, 32))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    serve("test/sscd_r18", buffer.getvalue(), fmt="torchscript-sscd", filename="sscd_r18.torchscript.pt")
    teacher = build_network("sscd_r18", out_dim=512)
    load_network_weights(teacher, resolve("weights://test/sscd_r18#rdcd"))
    assert torch.equal(teacher.conv1.weight, scripted.backbone.conv1.weight)


def _official_ibn_state():
    """IBN-Net's resnet50_ibn_a layout built from torchvision's ResNet-50: in layer1-3 each block's ``bn1``
    is split into ``bn1.IN`` (instance norm, affine, the first half of the channels) and ``bn1.BN`` (the
    rest); layer4 keeps plain BN (IBN-Net's ResNet-50-IBN-a, ibn='a' in stages 1-3)."""
    state = {}
    for key, value in torchvision.models.resnet50(weights=None).state_dict().items():
        m = re.match(r"layer([123])\.(\d+)\.bn1\.(\w+)$", key)
        if not m:
            state[key] = value
            continue
        half = value.shape[0] // 2 if value.dim() else None
        prefix = key[: -len(m.group(3))]
        if m.group(3) in ("weight", "bias"):
            state[prefix + "IN." + m.group(3)] = value[:half]
        if m.group(3) != "num_batches_tracked":
            state[prefix + "BN." + m.group(3)] = value[half:]
        else:
            state[prefix + "BN.num_batches_tracked"] = value
    return state


def test_ibn_file_loads_into_fastreids_ibn_backbone_with_every_tensor(weights_server):
    from fastreid.config import get_cfg
    from fastreid.modeling.backbones import build_resnet_backbone

    from adasp.trainer import resolve_backbone_pretrain
    from shared.engine.checkpoint import add_checkpoint_config

    server, serve = weights_server
    state = _official_ibn_state()
    serve("test/resnet50_ibn_a", _bytes(state), fmt="ibn-resnet")
    cfg = get_cfg()
    add_checkpoint_config(cfg)
    cfg.MODEL.BACKBONE.DEPTH, cfg.MODEL.BACKBONE.WITH_IBN = "50x", True
    cfg.MODEL.BACKBONE.PRETRAIN, cfg.MODEL.BACKBONE.PRETRAIN_PATH = True, "weights://test/resnet50_ibn_a"
    resolved = resolve_backbone_pretrain(cfg)
    assert os.path.isfile(resolved.MODEL.BACKBONE.PRETRAIN_PATH)
    assert cfg.MODEL.BACKBONE.PRETRAIN_PATH == "weights://test/resnet50_ibn_a"  # the caller's cfg is kept
    backbone = build_resnet_backbone(resolved)  # FastReID's own torch.load + load_state_dict(strict=False)
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    assert missing == [] and sorted(unexpected) == ["fc.bias", "fc.weight"]
    assert torch.equal(backbone.layer1[0].bn1.IN.weight, state["layer1.0.bn1.IN.weight"])


# -------------------------------------------------------------------------- the pre-fetch command, as shown
PREFETCH = ("python -m shared.weights fetch --config "
            "projects/SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml")


def test_prefetch_command_of_the_readme_fills_the_cache(weights_server, tmp_path):
    """The command projects/SimD/README.md shows, run as shown, against the loopback server standing in for
    download.pytorch.org ($TINYVISION_WEIGHTS_CATALOG replaces the entry's URL and digest)."""
    with open(os.path.join(REPO, "projects", "SimD", "README.md")) as f:
        assert PREFETCH in f.read()
    server, _ = weights_server
    torch.manual_seed(0)
    payload = _bytes({"conv1.weight": torch.randn(64, 3, 7, 7), "fc.weight": torch.randn(10, 2048),
                      "layer1.0.conv1.weight": torch.randn(64, 64, 1, 1)})
    url = server.add("/models/resnet50-0676ba61.pth", payload)
    original = get_entry("torchvision/resnet50-0676ba61")
    record = dict(name=original.name, urls=[url], sha256=hashlib.sha256(payload).hexdigest(),
                  hash_prefix=None, size=len(payload), format=original.format, source=original.source,
                  description="test payload")
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps([record]))
    env = dict(os.environ, TINYVISION_WEIGHTS_CATALOG=str(catalog))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    done = subprocess.run(shlex.split(PREFETCH), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert server.requests["/models/resnet50-0676ba61.pth"] == 1
    cache = os.environ["TINYVISION_WEIGHTS_CACHE"]
    found = glob.glob(os.path.join(cache, "**", "*"), recursive=True)
    files = sorted(os.path.relpath(p, cache) for p in found if os.path.isfile(p) and not p.endswith(".lock"))
    assert "torchvision/resnet50-0676ba61/resnet50-0676ba61.pth" in files
    assert "torchvision/resnet50-0676ba61/resnet50-0676ba61.detectron2.pkl" in files
    assert "weights://torchvision/resnet50-0676ba61#detectron2 ->" in done.stdout


# ------------------------------------------------------------ every weights command the docs show, as shown
DOCS = ["projects/SimD/README.md", "projects/IIF/README.md", "projects/AdaSP/README.md",
        "projects/RDCD/README.md", "projects/DAS/README.md", "docs/install.md"]


def _shown(prefix):
    """``[(doc, command)]``: every line of DOCS that starts with ``prefix`` (its comment cut)."""
    found = []
    for doc in DOCS:
        with open(os.path.join(REPO, doc)) as f:
            found += [(doc, line.split("  #")[0].strip()) for line in f if line.startswith(prefix)]
    return found


def _payload(fmt):
    """A small published file of format ``fmt`` with the keys its converter reads."""
    if fmt == "torchvision-resnet":
        return _bytes({"conv1.weight": torch.randn(8, 3, 7, 7),
                       "layer1.0.conv1.weight": torch.randn(8, 8, 1, 1)})
    if fmt == "cadene-bninception":
        return _bytes({"conv1_7x7_s2.weight": torch.randn(4, 3, 7, 7),
                       "conv1_7x7_s2_bn.weight": torch.ones(1, 4)})
    if fmt == "torchscript-sscd":
        class Sscd(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = torch.nn.Linear(3, 2)

            def forward(self, x):
                return self.backbone(x)

        buffer = io.BytesIO()
        torch.jit.save(torch.jit.trace(Sscd(), torch.zeros(1, 3)), buffer)
        return buffer.getvalue()
    return _bytes({"conv1.weight": torch.randn(8, 3, 7, 7)})


def test_docs_show_the_weights_commands():
    shown = [cmd for _, cmd in _shown("python -m shared.weights")]
    assert len(shown) >= 7 and all(" fetch --config " in c or " path " in c for c in shown)
    for doc in DOCS[:5]:  # every project README shows its pre-fetch command
        assert any(d == doc for d, _ in _shown("python -m shared.weights fetch --config")), doc


def test_every_weights_command_the_docs_show_runs_against_loopback(weights_server, capsys):
    """Each ``python -m shared.weights ...`` line of the READMEs and docs/install.md, run as shown (in this
    process: ``shared.weights.__main__.main`` with its arguments), every catalog entry served on loopback."""
    from shared.weights.__main__ import main

    server, serve = weights_server
    for name, entry in list(CATALOG.items()):
        serve(name, _payload(entry.format), fmt=entry.format, filename=entry.filename)
    for doc, command in _shown("python -m shared.weights"):
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "shared.weights"], (doc, command)
        cwd = os.getcwd()
        os.chdir(REPO)
        try:
            assert main(argv[3:]) == 0, (doc, command)
        finally:
            os.chdir(cwd)
        out = capsys.readouterr().out
        if argv[3] == "fetch":
            for uri in re.findall(r"(weights://\S+) -> ", out):
                assert os.path.isfile(resolve(uri)), (doc, uri)
            assert " -> " in out, (doc, command, out)


def test_make_weights_runs_the_fetch_command():
    """``make weights CONFIG=...`` (docs/install.md) is the fetch command on that preset (``make -n`` prints
    the recipe without running it)."""
    preset = "projects/SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml"
    with open(os.path.join(REPO, "docs", "install.md")) as f:
        assert f"make weights CONFIG={preset}" in f.read()
    done = subprocess.run(["make", "-n", "weights", f"CONFIG={preset}"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f".venv/bin/python -m shared.weights fetch --config {preset}" in done.stdout
    done = subprocess.run(["make", "-n", "weights"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ".venv/bin/python -m shared.weights fetch --all" in done.stdout


class _RecordingTrainer:
    """Stands in for a project trainer: records that training started."""

    started = []

    def __init__(self, cfg):
        _RecordingTrainer.started.append(cfg.MODEL.WEIGHTS)

    def resume_or_load(self, resume):
        pass

    def train(self):
        return "trained"


def test_the_front_door_refuses_random_init_and_logs_each_parts_weights(tmp_path, weights_server, caplog):
    import argparse
    import logging

    from shared.engine import build_cfg, train_or_evaluate

    server, serve = weights_server
    entry = serve("test/start", _payload("torchvision-resnet"))
    args = argparse.Namespace(eval_only=False, resume=False)
    cfg = build_cfg(lambda c: None, opts=["OUTPUT_DIR", str(tmp_path), "MODEL.DEVICE", "cpu"])
    with pytest.raises(InitialWeightsError, match="MODEL.WEIGHTS"):
        train_or_evaluate(_RecordingTrainer, cfg, args)
    assert _RecordingTrainer.started == []
    with caplog.at_level(logging.INFO):
        cfg.MODEL.WEIGHTS = "weights://test/start"
        assert train_or_evaluate(_RecordingTrainer, cfg, args) == "trained"
        cache = os.environ["TINYVISION_WEIGHTS_CACHE"]
        assert f"MODEL.WEIGHTS: weights://test/start -> {cache}" in caplog.text
        assert f"sha256 {entry.sha256[:12]}" in caplog.text
        cfg.MODEL.WEIGHTS, cfg.MODEL.FROM_SCRATCH = "", True
        assert train_or_evaluate(_RecordingTrainer, cfg, args) == "trained"
        assert "MODEL.WEIGHTS: none (random initialisation, MODEL.FROM_SCRATCH True)" in caplog.text
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")  # --resume needs no initial weights
    cfg.MODEL.FROM_SCRATCH = False
    resume = argparse.Namespace(eval_only=False, resume=True)
    assert train_or_evaluate(_RecordingTrainer, cfg, resume) == "trained"
