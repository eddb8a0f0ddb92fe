"""A run folder used after training: a 2-iteration SSCD run on the tiny synthetic set exits 0 and writes
run.json; load_run reproduces the run's exported descriptors; predict.py writes isc2021's files for any
folder; the run's own predictions.csv, scored by tools/evaluate_predictions.py, gives the run's µAP; the
README's command runs as shown."""
import csv
import json
import os
from pathlib import Path

import rdcd  # noqa: F401
import h5py
import numpy as np
import pytest

from rdcd.config import add_rdcd_config
from rdcd.datasets import get_copy_detection_dataset
from shared.engine import build_cfg, load_run
from shared.engine.provenance import load_module_file
from shared.engine.validation import ConfigValueError

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "RDCD"
TINY = ["MODEL.META_ARCHITECTURE", "SSCD", "MODEL.SSCD.NETWORK", "sscd_r18", "MODEL.SSCD.DIM", "16",
        "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_REFERENCES", "8",
        "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_MATCHING_QUERIES", "4",
        "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_DISTRACTOR_QUERIES", "2",
        "DATASETS.SYNTHETIC_COPY_DETECTION.NUM_TRAIN", "8",
        "DATASETS.SYNTHETIC_COPY_DETECTION.IMAGE_SIZE", "32",
        "INPUT.COPY_DETECTION.TRAIN_SIZE", "32", "INPUT.COPY_DETECTION.TEST_SIZE", "32",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1",
        "MODEL.RDCD.MOCO.QUEUE", "8", "MODEL.RDCD.LOSS.KD_QUEUE", "8", "TEST.COPY_DETECTION.K", "3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-iteration run: (run folder, datasets root, the run's final metrics)."""
    root = tmp_path_factory.mktemp("rdcd_run")
    old = os.environ.get("DETECTRON2_DATASETS")
    os.environ["DETECTRON2_DATASETS"] = str(root / "datasets")
    try:
        train_net = load_module_file(PROJECT / "train_net.py", "rdcd_train_net")
        out = root / "output" / "sscd_tiny"
        args = train_net.default_argument_parser().parse_args(
            ["--config-file", str(PROJECT / "configs/synthetic/Base-synthetic.yaml"), "OUTPUT_DIR", str(out)]
            + TINY)
        results = train_net.main(args)
    finally:
        if old is None:
            os.environ.pop("DETECTRON2_DATASETS")
        else:
            os.environ["DETECTRON2_DATASETS"] = old
    return out, root / "datasets", results["synthetic_disc21"]


def test_short_run_writes_run_json_metrics_and_exports(run):
    out, _, metrics = run
    info = json.loads((out / "run.json").read_text())
    assert info["project"] == "rdcd" and info["metadata"]["descriptor_dim"] == 16
    assert info["metadata"]["metric"] == "ip" and info["metadata"]["normalized"] is True
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    final = [r for r in records if "synthetic_disc21/uAP" in r]
    assert final and final[-1]["synthetic_disc21/uAP"] == pytest.approx(metrics["uAP"], abs=1e-9)
    folder = out / "inference" / "synthetic_disc21"
    assert {"descriptors.h5", "predictions.csv", "predictions_sn.csv"} <= set(os.listdir(folder))


def test_load_run_gives_the_descriptors_of_the_runs_evaluation(run, monkeypatch):
    out, datasets, _ = run
    monkeypatch.setenv("DETECTRON2_DATASETS", str(datasets))
    extractor = load_run(str(out), device="cpu")
    split = get_copy_detection_dataset("synthetic_disc21", extractor.cfg)
    queries = split.images("queries")
    with h5py.File(out / "inference" / "synthetic_disc21" / "descriptors.h5", "r") as f:
        exported = dict(zip([b.decode() for b in f["query_ids"][:]], f["query"][:]))
    ours = extractor.embed_files([p for _, p in queries])
    np.testing.assert_allclose(ours, np.stack([exported[i] for i, _ in queries]), atol=1e-6)


def test_the_runs_predictions_csv_scores_to_the_runs_uap(run, capsys):
    out, datasets, metrics = run
    tool = load_module_file(PROJECT / "tools" / "evaluate_predictions.py", "evaluate_predictions")
    gt = datasets / "synthetic_disc21" / "dev_ground_truth.csv"
    for csv_name, key in (("predictions.csv", "uAP"), ("predictions_sn.csv", "uAP_sn")):
        assert tool.main([str(gt), str(out / "inference" / "synthetic_disc21" / csv_name), "--json"]) == 0
        scored = json.loads(capsys.readouterr().out)
        assert scored["uAP"] == pytest.approx(metrics[key], abs=1e-6) and scored["unit"] == "percent"


def test_queries_without_a_ground_truth_row_are_false_positives_in_tool_and_run(run, tmp_path, capsys):
    out, datasets, _ = run
    tool = load_module_file(PROJECT / "tools" / "evaluate_predictions.py", "evaluate_predictions")
    gt_rows = (datasets / "synthetic_disc21" / "dev_ground_truth.csv").read_text().splitlines()
    matched = [r for r in gt_rows[1:] if not r.endswith(",")]
    query, reference = matched[0].split(",")
    gt = tmp_path / "gt.csv"  # one matched query, and a second query left out of the ground truth
    gt.write_text(f"query_id,reference_id\n{query},{reference}\n")
    other = matched[1].split(",")[0]
    pred = tmp_path / "pred.csv"
    # isc2021: (other, x) at 0.9 is a negative, then the positive at 0.5: precision 1/2 at recall 1
    pred.write_text(f"query_id,reference_id,score\n{other},{reference},0.9\n{query},{reference},0.5\n")
    assert tool.main([str(gt), str(pred), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["uAP"] == pytest.approx(50.0) and scored["num_queries_without_gt_row"] == 1


def test_predict_on_any_folder_writes_isc2021_files(run, tmp_path):
    out, datasets, _ = run
    predict = load_module_file(PROJECT / "predict.py", "rdcd_predict")
    base = datasets / "synthetic_disc21" / "images"
    assert predict.main(["--run", str(out), "--input", str(base / "dev_queries"), "--references",
                         str(base / "references"), "--output", str(tmp_path / "p"), "--k", "2"]) == 0
    with h5py.File(tmp_path / "p" / "query_descriptors.h5", "r") as f:  # isc2021 read_descriptors' layout
        assert f["vectors"].shape == (6, 16) and f["vectors"].dtype == np.float32
        names = [b.decode() for b in f["image_names"][:]]
    assert names == (tmp_path / "p" / "query_ids.txt").read_text().split() and names[0] == "Q00000"
    assert np.load(tmp_path / "p" / "reference_descriptors.npy").shape == (8, 16)
    with h5py.File(tmp_path / "p" / "descriptors.h5", "r") as f:
        assert set(f) == {"query", "reference", "query_ids", "reference_ids"}
    rows = list(csv.reader(open(tmp_path / "p" / "predictions.csv")))
    assert rows[0] == ["query_id", "reference_id", "score"] and len(rows) == 1 + 6 * 2
    assert all(float(s) == float(repr(float(s))) for _, _, s in rows[1:])


def test_readme_command_runs_as_shown(run, tmp_path, run_readme_section):
    out, datasets, _ = run
    (tmp_path / "projects").symlink_to(PROJECT.parent)
    (tmp_path / "output" / "rdcd_synthetic").mkdir(parents=True)
    (tmp_path / "output" / "rdcd_synthetic" / "teacher_sscd_r18").symlink_to(out)
    (tmp_path / "datasets").symlink_to(datasets)
    run_readme_section(str(PROJECT / "README.md"), "Use a trained model", tmp_path)
    assert (tmp_path / "output" / "rdcd_predictions" / "predictions.csv").is_file()


def test_sgd_rate_too_large_for_the_batch_is_refused_at_config_build():
    message = r"SOLVER.BASE_LR=1.0: is too large for SOLVER.IMS_PER_BATCH=32 "
    with pytest.raises(ConfigValueError, match=message):
        build_cfg(add_rdcd_config, str(PROJECT / "configs/synthetic/Base-synthetic.yaml"),
                  ["SOLVER.OPTIMIZER", "SGD", "SOLVER.BASE_LR", "1.0"])
    build_cfg(add_rdcd_config, str(PROJECT / "configs/Base-RDCD.yaml"))  # the recipe: 1.0 at batch 256


def test_augmentation_sheet_labels_every_view(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    tool = load_module_file(PROJECT / "tools" / "show_augmentations.py", "show_augmentations")
    out = tmp_path / "aug.png"
    tool.main(["--synthetic", "--num", "1", "--views", "2", "--cell", "96", "--overlays", "--out", str(out),
               "INPUT.COPY_DETECTION.TRAIN_SIZE", "64", "INPUT.COPY_DETECTION.FONT", ""])
    sheet = np.asarray(__import__("PIL.Image").Image.open(out).convert("RGB")).astype(int)
    line = tool.LINE
    assert sheet.shape == (line + 2 * (96 + 2 * line), 3 * 96, 3)  # title, then 2 rows of 3 tiles
    for row in range(2):
        caption = sheet[line + row * (96 + 2 * line) + line:][:line]  # the tile-label line of the row
        for tile in range(3):  # each tile's label is drawn in the label colour above it
            part = caption[:, tile * 96:(tile + 1) * 96]
            assert ((np.abs(part - [0, 70, 160]).max(axis=2)) < 60).any()


def test_eval_only_loading_does_not_need_the_training_queue_sizes(tmp_path):
    import torch

    from rdcd.trainer import RDCDTrainer

    def cfg(queue):
        return build_cfg(add_rdcd_config, str(PROJECT / "configs/synthetic/rdcd_r18_64.yaml"),
                         ["MODEL.RDCD.TEACHER_WEIGHTS", "", "MODEL.RDCD.KD_DIM", "32", "MODEL.RDCD.DIM", "8",
                          "MODEL.RDCD.MOCO.QUEUE", str(queue), "MODEL.RDCD.LOSS.KD_QUEUE", str(queue),
                          "OUTPUT_DIR", str(tmp_path)])

    trained = RDCDTrainer.build_model(cfg(8))
    torch.save({"model": trained.state_dict(), "iteration": 1}, tmp_path / "model.pth")
    model = RDCDTrainer.build_model(cfg(65536))  # the preset's queue sizes, as --eval-only builds it
    RDCDTrainer.build_checkpointer(model, cfg(65536)).load(str(tmp_path / "model.pth"), checkpointables=[])
    loaded, saved = model.student.state_dict(), trained.student.state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    training = RDCDTrainer.build_checkpointer(model, cfg(65536), strict=None)  # resuming training: refused
    with pytest.raises(Exception, match="key_queue.features"):
        training.load(str(tmp_path / "model.pth"))
