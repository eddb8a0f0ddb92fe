"""shared.engine.run (run.json, checkpoint choice, loader registry) and shared.engine.predict (flags, input
expansion, progress line)."""
import io
import json
import os

import pytest

import shared  # noqa: F401
from shared.engine import run as run_module
from shared.engine.predict import Progress, expand_inputs, output_names, predict_argument_parser
from shared.engine.run import (RUN_LOADERS, load_run, read_run_info, register_run_loader, resolve_checkpoint,
                               write_run_info)


class _Cfg:
    def __init__(self, output_dir):
        self.OUTPUT_DIR = output_dir


def _touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_expand_inputs_files_folders_globs_in_order_without_duplicates(tmp_path):
    for name in ("a/1.jpg", "a/sub/2.PNG", "a/notes.txt", "b/3.jpeg", "c.bmp"):
        _touch(str(tmp_path / name))
    d = str(tmp_path)
    got = expand_inputs([f"{d}/a", f"{d}/b/*.jpeg", f"{d}/a/1.jpg", f"{d}/c.bmp", f"{d}/a/notes.txt"])
    assert got == [f"{d}/a/1.jpg", f"{d}/a/sub/2.PNG", f"{d}/b/3.jpeg", f"{d}/c.bmp", f"{d}/a/notes.txt"]
    assert expand_inputs([f"{d}/**/*.PNG"]) == [f"{d}/a/sub/2.PNG"]  # recursive glob; extension case-free
    assert output_names(got[:3]) == ["a/1.jpg", "a/sub/2.PNG", "b/3.jpeg"]


def test_expand_inputs_names_the_pattern_that_matches_nothing(tmp_path):
    _touch(str(tmp_path / "empty" / "readme.txt"))
    with pytest.raises(FileNotFoundError, match=r"--input '.*empty'.*no image file"):
        expand_inputs([str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError, match=r"--gallery '.*nope/\*\.jpg': no such file or folder"):
        expand_inputs([str(tmp_path / "nope" / "*.jpg")], flag="--gallery")


def test_progress_line_eta_is_elapsed_per_item_times_remaining():
    p = Progress(range(10), "predict", interval=0.0, stream=io.StringIO())
    assert p.line(4, 8.0) == "predict 4/10 images  0.5/s  elapsed 0:00:08  eta 0:00:12"
    assert p.line(10, 3725.0).endswith("elapsed 1:02:05")  # done: no eta
    stream = io.StringIO()
    assert list(Progress(range(3), "x", interval=1e9, stream=stream)) == [0, 1, 2]
    assert stream.getvalue().count("\n") == 1 and stream.getvalue().startswith("x 3/3 images")


def test_predict_flags_are_the_same_everywhere():
    args = predict_argument_parser(gallery=True).parse_args(
        ["--run", "r", "--input", "a", "b", "--gallery", "g", "--checkpoint", "model_0000001"])
    assert (args.run, args.input, args.gallery, args.checkpoint, args.output) == (
        "r", ["a", "b"], ["g"], "model_0000001", None)
    with pytest.raises(SystemExit):
        predict_argument_parser().parse_args(["--input", "a"])  # --run is required


def test_resolve_checkpoint_last_then_final_then_named(tmp_path):
    d = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resolve_checkpoint(d)
    _touch(f"{d}/model_final.pth")
    assert resolve_checkpoint(d) == f"{d}/model_final.pth"
    _touch(f"{d}/model_0000004.pth")
    _touch(f"{d}/last_checkpoint", b"model_0000004.pth")
    assert resolve_checkpoint(d) == f"{d}/model_0000004.pth"
    assert resolve_checkpoint(d, "model_final") == f"{d}/model_final.pth"
    listing = r"model_0000009.*holds \['model_0000004.pth', 'model_final.pth'\]"
    with pytest.raises(FileNotFoundError, match=listing):
        resolve_checkpoint(d, "model_0000009")


def test_run_json_round_trip_and_loader_dispatch(tmp_path, monkeypatch):
    d = str(tmp_path / "run")
    path = write_run_info(_Cfg(d), "unit_test_project", "json", thing_classes=["a", "b"])
    record = json.load(open(path))
    assert record["project"] == "unit_test_project" and record["metadata"] == {"thing_classes": ["a", "b"]}
    with pytest.raises(TypeError, match="'bad'"):
        write_run_info(_Cfg(d), "p", "m", bad=object())
    _touch(f"{d}/model_final.pth")
    monkeypatch.setattr(run_module, "RUN_LOADERS", dict(RUN_LOADERS))
    with pytest.raises(KeyError, match="unknown 'project' of .*run.json 'unit_test_project'"):
        load_run(d)  # the module imported ("json") registers nothing
    calls = []
    register_run_loader("unit_test_project")(
        lambda run, ckpt, device, **kw: calls.append((run, ckpt, device, kw)))
    load_run(d, device="cpu", extra=1)
    run, ckpt, device, kw = calls[0]
    assert (run.project, run.metadata["thing_classes"], ckpt, device, kw) == (
        "unit_test_project", ["a", "b"], f"{os.path.abspath(d)}/model_final.pth", "cpu", {"extra": 1})
    with pytest.raises(KeyError, match="registered already"):
        register_run_loader("unit_test_project")(lambda *a: None)


def test_read_run_info_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_run_info(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="run.json not found"):
        read_run_info(str(tmp_path))
    _touch(str(tmp_path / "run.json"), b'{"project": "x"}')
    with pytest.raises(KeyError, match="loader_module"):
        read_run_info(str(tmp_path))
    _touch(str(tmp_path / "run.json"), b'{"project": "x",')
    with pytest.raises(Exception, match="malformed JSON in run metadata file"):
        read_run_info(str(tmp_path))
