"""A run folder used after training: a 2-iteration DAS run on the tiny synthetic set exits 0 and writes
run.json, inference/<set>/ and a labelled retrieval sheet; load_run gives the evaluation's embeddings without
reading a dataset; predict.py writes the documented files; RECALL_KS larger than the test set is refused
before training; the README's command runs as shown."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

import das  # noqa: F401
from das.trainer import DASTrainer
from shared.engine import load_run
from shared.engine.provenance import load_module_file
from shared.engine.validation import ConfigValueError

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "DAS"


FIXTURES = load_module_file(Path(__file__).with_name("conftest.py"), "das_test_fixtures")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("das_run")
    old = os.environ.get("DETECTRON2_DATASETS")
    os.environ["DETECTRON2_DATASETS"] = str(root / "datasets")
    try:
        train_net = load_module_file(PROJECT / "train_net.py", "das_train_net")
        out = root / "run"
        opts = list(FIXTURES.TINY_OPTS) + ["OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "2",
                                           "TEST.EVAL_PERIOD", "0", "MODEL.DAS.NUM_CLASSES", "0",
                                           "TEST.RETRIEVAL.VIS_QUERIES", "2"]
        results = train_net.main(train_net.default_argument_parser().parse_args(
            ["--config-file", FIXTURES.SYNTHETIC_CONFIG] + opts))
    finally:
        if old is None:
            os.environ.pop("DETECTRON2_DATASETS")
        else:
            os.environ["DETECTRON2_DATASETS"] = old
    return out, root / "datasets", results["synthetic_birds_test"]


def test_short_run_writes_run_json_inference_and_sheet(run):
    out, _, metrics = run
    info = json.loads((out / "run.json").read_text())
    assert info["project"] == "das" and info["metadata"]["descriptor_dim"] == 16
    assert info["metadata"]["num_classes"] == 4 and info["metadata"]["metric"] == "l2"
    folder = out / "inference" / "synthetic_birds_test"
    ids = (folder / "ids.txt").read_text().split()
    assert len(ids) == 16 and np.load(folder / "embeddings.npy").shape == (16, 16)
    labels = (folder / "labels.txt").read_text().split()
    rows = list(csv.DictReader(open(folder / "ranking.csv")))
    assert len(rows) == 16 * 10 and all(r["query_id"] != r["gallery_id"] for r in rows)  # self excluded
    label_of = dict(zip(ids, labels))
    same = [str(int(label_of[r["query_id"]] == label_of[r["gallery_id"]])) for r in rows]
    assert [r["label_match"] for r in rows] == same
    # R@1 of the run = share of first-ranked results with the query's label
    firsts = [r for r in rows if r["rank"] == "1"]
    assert 100 * np.mean([r["label_match"] == "1" for r in firsts]) == pytest.approx(metrics["R@1"])
    assert (out / "retrieval_synthetic_birds_test.png").stat().st_size > 0


def test_load_run_gives_the_evaluation_embeddings_without_a_dataset(run, monkeypatch, tmp_path):
    out, datasets, _ = run
    folder = out / "inference" / "synthetic_birds_test"
    ids = (folder / "ids.txt").read_text().split()
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "nothing_here"))
    extractor = load_run(str(out), device="cpu")
    ours = extractor.embed_files([str(datasets / "synthetic_birds" / "images" / i) for i in ids])
    np.testing.assert_allclose(ours, np.load(folder / "embeddings.npy"), atol=1e-5)


def test_predict_writes_embeddings_ranking_and_sheet(run, tmp_path):
    out, datasets, _ = run
    images = datasets / "synthetic_birds" / "images"
    predict = load_module_file(PROJECT / "predict.py", "das_predict")
    assert predict.main(["--run", str(out), "--input", str(images / "*" / "*_0000.jpg"), "--gallery",
                         str(images / "*" / "*_000[1-9].jpg"), "--output", str(tmp_path / "p")]) == 0
    ids = (tmp_path / "p" / "ids.txt").read_text().split()
    assert len(ids) == 8 and np.load(tmp_path / "p" / "embeddings.npy").shape == (8, 16)
    assert np.load(tmp_path / "p" / "gallery_embeddings.npy").shape == (24, 16)
    rows = list(csv.DictReader(open(tmp_path / "p" / "ranking.csv")))
    assert len(rows) == 8 * 10 and [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    first = [float(r["score"]) for r in rows[:10]]
    assert first == sorted(first)  # L2 distance, nearest first
    assert (tmp_path / "p" / "retrieval.png").stat().st_size > 0


def test_recall_k_larger_than_the_test_set_is_refused_before_training(run, tiny_cfg, monkeypatch):
    _, datasets, _ = run
    monkeypatch.setenv("DETECTRON2_DATASETS", str(datasets))
    with pytest.raises(ConfigValueError, match=r"TEST.RETRIEVAL.RECALL_KS=\(1, 16\): K=16 exceeds .*"
                                               r"'synthetic_birds_test'.*\(15\)"):
        DASTrainer(tiny_cfg("TEST.RETRIEVAL.RECALL_KS", "(1, 16)", "OUTPUT_DIR", ""))


def test_readme_command_runs_as_shown(run, tmp_path, run_readme_section):
    out, datasets, _ = run
    (tmp_path / "projects").symlink_to(PROJECT.parent)
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "das_synthetic").symlink_to(out)
    (tmp_path / "datasets").symlink_to(datasets)
    run_readme_section(str(PROJECT / "README.md"), "Use a trained model", tmp_path)
    assert (tmp_path / "output" / "das_predictions" / "ranking.csv").is_file()
