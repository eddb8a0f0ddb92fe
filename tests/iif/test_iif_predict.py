"""A trained IIF run used as a model: train 2 iterations with the synthetic iif_raw preset through
train_net.py, then the README's "Use a trained model" commands (predict.py on a glob, load_run, detectron2's
own DefaultPredictor after a plain detectron2 import), with the same detections and masks as the trainer's
LVIS evaluation, and without the training set."""
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
README = str(REPO / "projects" / "IIF" / "README.md")
RUN = "output/iif_synthetic/iif_raw"  # the preset's OUTPUT_DIR
#: 2 iterations and 50 detections per image keep the test fast
TRAIN = ["projects/IIF/train_net.py", "--config-file", "projects/IIF/configs/synthetic/iif_raw.yaml",
         "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "TEST.DETECTIONS_PER_IMAGE", "50"]
VAL = Path("datasets") / "synthetic_lvis" / "coco" / "val2017"


@pytest.fixture(scope="module")
def workdir(train_in_user_folder):
    return train_in_user_folder("iif_user", TRAIN)


def _evaluation_records(cwd: Path):
    """The trainer's LVIS evaluation results, keyed by image file name."""
    inference = cwd / RUN / "inference" / "synthetic_lvis_val"
    results = json.loads((inference / "lvis_instances_results.json").read_text())
    gt = json.loads((cwd / "datasets" / "synthetic_lvis" / "lvis" / "lvis_v1_val.json").read_text())
    names = {im["id"]: os.path.basename(im["coco_url"]) for im in gt["images"]}
    by_name = {}
    for r in results:
        by_name.setdefault(names[r["image_id"]], []).append(r)
    return by_name


def test_run_folder_holds_metadata_results_and_metrics(workdir, tensorboard_scalar_tags):
    run = workdir / RUN
    meta = json.loads((run / "run.json").read_text())
    assert meta["project"] == "iif" and len(meta["metadata"]["thing_classes"]) == 12
    assert meta["metadata"]["thing_dataset_ids"] == list(range(1, 13))  # LVIS ids, as LVISEvaluator writes
    inference = run / "inference" / "synthetic_lvis_val"
    record = json.loads((inference / "iif_evaluation.json").read_text())
    assert record["dataset"] == "synthetic_lvis_val" and record == json.loads(
        (run / "iif_evaluation.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.json").read_text().splitlines()]
    assert any("segm/APr" in row and row["iteration"] == 2 for row in rows)
    assert {"bbox/APr", "segm/APr", "total_loss"} <= tensorboard_scalar_tags(run)
    assert "\x1b" not in (run / "log.txt").read_text()


def test_readme_commands_without_the_training_set(workdir, run_readme_section, same_detections):
    evaluation = _evaluation_records(workdir)
    # the model is self-contained: predicting needs neither the training json nor the dataset registration
    train_json = workdir / "datasets" / "synthetic_lvis" / "lvis" / "lvis_v1_train.json"
    shutil.move(train_json, str(train_json) + ".away")
    try:
        _, load_run_block, default_predictor_block = run_readme_section(README, "Use a trained model",
                                                                        workdir)
    finally:
        shutil.move(str(train_json) + ".away", train_json)
    out = workdir / "output" / "iif_synthetic" / "predictions"
    names = [f"00000000030{i}.jpg" for i in range(1, 10)]
    images = json.loads((out / "images.json").read_text())
    assert [im["file_name"] for im in images] == names
    assert all((im["height"], im["width"]) == (128, 128) for im in images)
    for name in names:
        picture = Image.open(out / name)
        assert picture.mode == "RGB" and picture.size == (640, 640)
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score", "file_name", "segmentation"}
    assert {r["category_id"] for r in results} <= set(range(1, 13))
    first = [r for r in results if r["file_name"] == names[0]]
    assert load_run_block.stdout.split()[0] == default_predictor_block.stdout.strip() == str(len(first))
    for name in names[:3]:
        same_detections([{k: v for k, v in r.items() if k != "file_name"} for r in results
                         if r["file_name"] == name], evaluation[name])


def test_load_run_gives_the_trainers_evaluation_detections(workdir, same_detections):
    from shared.engine import load_run

    predictor = load_run(str(workdir / RUN), device="cpu")
    assert predictor.cfg.MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE == "checkpoint"
    weights = predictor.model.roi_heads.box_predictor.iif_weights
    assert weights.shape == (13,) and float(weights[-1]) == 1.0  # background weight 1 (BG_WEIGHT)
    evaluation = _evaluation_records(workdir)
    for name in ("000000000320.jpg", "000000000350.jpg"):
        instances = predictor.predict_file(str(workdir / VAL / name))
        same_detections(predictor.coco_records(instances, evaluation[name][0]["image_id"]), evaluation[name])


def test_checkpoint_count_source_needs_a_trained_iif_model(tmp_path):
    import torch

    from iif.config import add_iif_config
    from iif.modeling import iif_weights_from_cfg
    from shared.engine import build_cfg

    cfg = build_cfg(add_iif_config, "", ["MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE", "checkpoint"])
    with pytest.raises(ValueError, match="needs MODEL.WEIGHTS to be a trained model file"):
        iif_weights_from_cfg(cfg)
    path = str(tmp_path / "plain.pth")
    torch.save({"model": {"roi_heads.box_predictor.cls_score.weight": torch.zeros(3, 2)}}, path)
    cfg.MODEL.WEIGHTS = path
    with pytest.raises(ValueError, match="holds no '\\*.box_predictor.iif_weights' tensor"):
        iif_weights_from_cfg(cfg)
    torch.save({"model": {"roi_heads.box_predictor.iif_weights": torch.tensor([2.0, 0.5, 1.0])}}, path)
    assert iif_weights_from_cfg(cfg).tolist() == [2.0, 0.5, 1.0]
