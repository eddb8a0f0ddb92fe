"""A trained SimD run used as a model: train 2 iterations with the synthetic preset through train_net.py,
then the README's "Use a trained model" commands (predict.py on a glob, load_run, detectron2's own
DefaultPredictor after a plain detectron2 import), and the same detections as the trainer's evaluation."""
import json
import os
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
README = str(REPO / "projects" / "SimD" / "README.md")
RUN = "output/simd/synthetic_faster_rcnn_R18_FPN_simd"  # the synthetic preset's OUTPUT_DIR
#: 2 iterations, 128-px test images and 100 detections per image keep the test fast
TRAIN = ["projects/SimD/train_net.py", "--config-file",
         "projects/SimD/configs/synthetic/faster_rcnn_R18_FPN_simd.yaml", "SOLVER.MAX_ITER", "2",
         "SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128",
         "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128", "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
         "TEST.DETECTIONS_PER_IMAGE", "100"]


@pytest.fixture(scope="module")
def workdir(train_in_user_folder):
    """A user's folder with ``projects/``, ``./datasets`` and the run trained there (exit 0)."""
    return train_in_user_folder("simd_user", TRAIN)


def _evaluation_records(cwd: Path):
    """The trainer's own evaluation results, keyed by image file name."""
    run = cwd / RUN
    results = json.loads((run / "inference" / "synthetic_tiny_val" / "coco_instances_results.json")
                         .read_text())
    gt = json.loads((cwd / "datasets" / "synthetic_tiny" / "annotations" / "aitod_val_v1.json").read_text())
    names = {im["id"]: os.path.basename(im["file_name"]) for im in gt["images"]}
    by_name = {}
    for r in results:
        by_name.setdefault(names[r["image_id"]], []).append(r)
    return by_name


def test_run_folder_holds_metadata_metrics_and_plain_log(workdir, tensorboard_scalar_tags):
    run = workdir / RUN
    meta = json.loads((run / "run.json").read_text())
    assert meta["project"] == "simd" and meta["loader_module"] == "simd.predictor"
    assert meta["metadata"]["thing_classes"] == ["airplane", "bridge", "storage-tank", "ship",
                                                 "swimming-pool", "vehicle", "person", "wind-mill"]
    assert meta["metadata"]["thing_dataset_ids"] == list(range(1, 9)) and meta["metadata"]["simd_m"] > 0
    rows = [json.loads(line) for line in (run / "metrics.json").read_text().splitlines()]
    assert any("bbox/AP" in row and row["iteration"] == 2 for row in rows)  # final evaluation recorded
    assert {"bbox/AP", "bbox/APvt", "total_loss"} <= tensorboard_scalar_tags(run)
    log = (run / "log.txt").read_text()
    assert "Running with full config" in log and "\x1b" not in log


def test_readme_commands_write_the_documented_files(workdir, run_readme_section, same_detections):
    bash, load_run_block, default_predictor_block = run_readme_section(README, "Use a trained model", workdir)
    out = workdir / "output" / "simd" / "predictions"
    images = json.loads((out / "images.json").read_text())
    names = [f"val_0000{i}.png" for i in range(1, 10)]
    assert [im["file_name"] for im in images] == names and [im["id"] for im in images] == list(range(9))
    assert all((im["height"], im["width"]) == (256, 256) for im in images)
    for name in names:
        picture = Image.open(out / name)
        assert picture.mode == "RGB" and picture.size == (640, 640)  # 256 px drawn enlarged to 640
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert results and {r["category_id"] for r in results} <= set(range(1, 9))
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score", "file_name"}
    first = [r for r in results if r["file_name"] == "val_00001.png"]
    # the Python blocks print the number of detections of val_00001.png: the same model, the same number
    assert load_run_block.stdout.split()[0] == default_predictor_block.stdout.strip() == str(len(first))
    evaluation = _evaluation_records(workdir)
    for name in names[:3]:
        same_detections([r for r in results if r["file_name"] == name], evaluation[name])


def test_load_run_gives_the_trainers_evaluation_detections(workdir, same_detections):
    from shared.engine import DetectionRunPredictor, load_run

    predictor = load_run(str(workdir / RUN), checkpoint="model_final", device="cpu")
    assert predictor.class_names[3] == "ship" and predictor.cfg.MODEL.SIMD.M > 0
    with pytest.raises(ValueError, match="the run names 3 classes but its model has 8"):
        DetectionRunPredictor(predictor.cfg, predictor.class_names[:3])
    evaluation = _evaluation_records(workdir)
    images = workdir / "datasets" / "synthetic_tiny" / "val" / "images"
    for name in ("val_00010.png", "val_00020.png"):
        instances = predictor.predict_file(str(images / name))
        same_detections(predictor.coco_records(instances, 0), evaluation[name])


def test_predict_names_an_input_that_matches_nothing(workdir):
    from shared.engine.predict import detection_predict_main

    with pytest.raises(FileNotFoundError, match=r"--input 'nowhere/\*\.png': no such file or folder"):
        detection_predict_main(["--run", str(workdir / RUN), "--input", "nowhere/*.png"])
    image = str(workdir / "datasets" / "synthetic_tiny" / "val" / "images" / "val_00001.png")
    with pytest.raises(FileNotFoundError, match="no checkpoint 'model_0000999'"):
        detection_predict_main(["--run", str(workdir / RUN), "--checkpoint", "model_0000999",
                                "--input", image])
