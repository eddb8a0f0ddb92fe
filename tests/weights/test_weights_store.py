"""The weights catalog's download, verification, cache, conversion and offline behaviour, against a loopback
HTTP server that serves files in the official key layouts (tests/conftest.py: weights_server)."""
import io
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from shared.weights import (WeightsHashError, WeightsUnavailableError, cache_dir, cached_file, converted_file,
                            get_entry, resolve)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def torchvision_r50_bytes():
    """A torchvision ResNet-50 state_dict (the official key layout and shapes, random values), .pth bytes."""
    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def _r50_backbone():
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone import build_resnet_backbone

    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    return build_resnet_backbone(cfg, ShapeSpec(channels=3))


def test_first_use_downloads_converts_and_loads_then_the_cache_is_used(weights_server, torchvision_r50_bytes):
    from detectron2.checkpoint import DetectionCheckpointer

    server, serve = weights_server
    payload, state = torchvision_r50_bytes
    entry = serve("test/resnet50", payload)
    path = f"/test/resnet50/{entry.filename}"

    backbone = _r50_backbone()
    # through detectron2's PathManager
    DetectionCheckpointer(backbone).load("weights://test/resnet50#detectron2")
    assert server.requests[path] == 1
    assert torch.equal(backbone.stem.conv1.weight, state["conv1.weight"])
    assert torch.equal(backbone.res5[2].conv3.norm.running_var, state["layer4.2.bn3.running_var"])
    assert torch.equal(backbone.res3[0].shortcut.norm.bias, state["layer2.0.downsample.1.bias"])

    # the converted file holds exactly the backbone's tensors, with the backbone's shapes (a strict load)
    from shared.engine.checkpoint import safe_pickle_load

    converted = safe_pickle_load(converted_file(entry, "detectron2"))["model"]
    expected = {k: tuple(v.shape) for k, v in backbone.state_dict().items()
                if not k.endswith("num_batches_tracked")}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected

    # second use: the cache, no request
    assert resolve("weights://test/resnet50") == cached_file(entry)
    assert resolve("weights://test/resnet50#detectron2") == converted_file(entry, "detectron2")
    assert server.requests[path] == 1
    assert resolve("/some/local/file.pth") == "/some/local/file.pth" and resolve("") == ""


@pytest.mark.parametrize("mode", ["corrupt", "truncate"])
def test_a_bad_download_is_refused_named_and_not_cached(weights_server, mode):
    server, serve = weights_server
    entry = serve("test/bad", os.urandom(4096), mode=mode)
    with pytest.raises(WeightsHashError) as err:
        resolve("weights://test/bad")
    message = str(err.value)
    assert entry.urls[0] in message and entry.sha256 in message
    folder = os.path.dirname(cached_file(entry))
    assert not [f for f in os.listdir(folder) if not f.endswith(".lock")]  # nothing cached, no partial file


def test_offline_error_names_key_url_sha256_and_where_to_place_the_file(weights_server, monkeypatch):
    server, serve = weights_server
    entry = serve("test/offline", b"weights" * 100)
    monkeypatch.setenv("TINYVISION_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        resolve("weights://test/offline")
    message = str(err.value)
    for part in ("test/offline", entry.urls[0], entry.sha256, cached_file(entry)):
        assert part in message
    assert server.requests == {}
    # placing the file there by hand is all it takes
    os.makedirs(os.path.dirname(cached_file(entry)), exist_ok=True)
    with open(cached_file(entry), "wb") as f:
        f.write(b"weights" * 100)
    assert resolve("weights://test/offline") == cached_file(entry)


def test_unreachable_host_and_damaged_cache(weights_server):
    server, serve = weights_server
    entry = serve("test/gone", b"x" * 64, mode="missing")
    with pytest.raises(WeightsUnavailableError, match="HTTPError"):
        resolve("weights://test/gone")
    server.modes[f"/test/gone/{entry.filename}"] = "ok"
    path = resolve("weights://test/gone")
    with open(path, "r+b") as f:  # damaged after it was cached: verified again, removed, downloaded again
        f.write(b"y")
    os.utime(path, ns=(1, 1))
    assert resolve("weights://test/gone") == path
    assert open(path, "rb").read() == b"x" * 64 and server.requests[f"/test/gone/{entry.filename}"] == 3


def test_unknown_entry_and_layout_are_named(weights_server):
    server, serve = weights_server
    serve("test/known", b"z" * 10)
    with pytest.raises(KeyError, match="test/knwon.*did you mean test/known"):
        resolve("weights://test/knwon")
    with pytest.raises(KeyError, match="into layout 'nolayout'"):
        resolve("weights://test/known#nolayout")


def _extra_catalog(tmp_path, entries):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([{k: (list(v) if isinstance(v, tuple) else v) for k, v in e.__dict__.items()}
                                for e in entries]))
    return str(path)


def test_two_processes_share_one_download(weights_server, tmp_path):
    server, serve = weights_server
    entry = serve("test/shared", os.urandom(1 << 16))
    server.delay = 1.0  # both processes are waiting while the first one downloads
    env = dict(os.environ, TINYVISION_WEIGHTS_CATALOG=_extra_catalog(tmp_path, [entry]))
    code = "import shared.weights as w; print(w.resolve('weights://test/shared'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [cached_file(entry)] * 2
    assert server.requests[f"/test/shared/{entry.filename}"] == 1


def test_prefetch_command_fills_the_cache_for_a_preset(weights_server, tmp_path, torchvision_r50_bytes):
    server, serve = weights_server
    entry = serve("test/prefetch", torchvision_r50_bytes[0])
    (tmp_path / "base.yaml").write_text("MODEL:\n  WEIGHTS: weights://test/prefetch#detectron2\n")
    (tmp_path / "preset.yaml").write_text("_BASE_: base.yaml\nSOLVER:\n  BASE_LR: 0.01\n")
    env = dict(os.environ, TINYVISION_WEIGHTS_CATALOG=_extra_catalog(tmp_path, [entry]))
    command = [sys.executable, "-m", "shared.weights", "fetch", "--config", str(tmp_path / "preset.yaml")]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert os.path.isfile(cached_file(entry)) and os.path.isfile(converted_file(entry, "detectron2"))
    # afterwards an offline machine with this cache needs nothing else
    env["TINYVISION_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", "import shared.weights as w; "
                          "print(w.resolve('weights://test/prefetch#detectron2'))"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == converted_file(entry, "detectron2")
    assert server.requests[f"/test/prefetch/{entry.filename}"] == 1


def test_catalog_entries_are_well_formed():
    from shared.weights import CATALOG

    assert CATALOG, "the catalog is empty"
    for name, entry in CATALOG.items():
        assert entry.name == name and entry.urls[0].startswith("https://")
        assert entry.sha256 or entry.hash_prefix
        assert entry.source and entry.format
    r50 = get_entry("torchvision/resnet50-0676ba61")
    assert r50.filename == "resnet50-0676ba61.pth" and r50.sha256.startswith(r50.hash_prefix)
    assert cache_dir()
