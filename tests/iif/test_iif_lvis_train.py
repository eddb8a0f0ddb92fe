"""End to end on the tiny synthetic LVIS set: one training step, resume, LVIS evaluation (APr/APc/APf)."""
import copy
import json
import math
import os
from pathlib import Path

import iif  # noqa: F401  (compat layer first; registers IIFROIHeads)
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.evaluation import LVISEvaluator
from detectron2.structures import Boxes, BoxMode, Instances, PolygonMasks

from iif.config import add_iif_config
from iif.trainer import IIFTrainer
from iif.weights import counts_from_lvis_json, iif_weight_vector

SYNTHETIC_CONFIG_DIR = Path(__file__).resolve().parents[2] / "projects" / "IIF" / "configs" / "synthetic"


def tiny_cfg(tiny_lvis, output_dir, config="iif_raw.yaml", iters=1):
    _, train_name, val_name, spec = tiny_lvis
    cfg = get_cfg()
    add_iif_config(cfg)
    cfg.merge_from_file(str(SYNTHETIC_CONFIG_DIR / config))
    cfg.merge_from_list([
        "DATASETS.TRAIN", (train_name,), "DATASETS.TEST", (val_name,),
        "MODEL.ROI_HEADS.NUM_CLASSES", spec.num_classes,
        "INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 64, "INPUT.MIN_SIZE_TEST", 64,
        "INPUT.MAX_SIZE_TEST", 64,
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", iters, "SOLVER.STEPS", (), "SOLVER.WARMUP_ITERS", 1,
        "TEST.DETECTIONS_PER_IMAGE", 20, "MODEL.RPN.POST_NMS_TOPK_TEST", 20, "OUTPUT_DIR", str(output_dir),
    ])
    return cfg


def test_one_training_step_resume_and_eval_record(tiny_lvis, tmp_path):
    root = tiny_lvis[0]
    cfg = tiny_cfg(tiny_lvis, tmp_path, iters=2)
    cfg.TEST.EVAL_PERIOD = 0
    cfg.DATASETS.TEST = ()  # evaluation is tested below; keep this test to the training loop
    trainer = IIFTrainer(cfg)
    predictor = trainer.model.roi_heads.box_predictor
    expected = iif_weight_vector(counts_from_lvis_json(os.path.join(root, "lvis", "lvis_v1_train.json")),
                                 "raw")
    torch.testing.assert_close(predictor.iif_weights, expected)
    trainer.resume_or_load(resume=False)
    trainer.train()
    metrics = [json.loads(line) for line in open(tmp_path / "metrics.json")]
    assert all(math.isfinite(m["total_loss"]) for m in metrics if "total_loss" in m)
    assert {"loss_cls", "loss_box_reg", "loss_mask"} <= set(metrics[-1])
    assert (tmp_path / "model_final.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    # --resume continues after the saved iteration, with the IIF buffer restored
    resumed = IIFTrainer(tiny_cfg(tiny_lvis, tmp_path, iters=2))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 2
    torch.testing.assert_close(resumed.model.roi_heads.box_predictor.iif_weights, expected)


def test_trainer_test_writes_lvis_metrics_and_record(tiny_lvis, tmp_path):
    cfg = tiny_cfg(tiny_lvis, tmp_path)
    model = IIFTrainer.build_model(cfg)
    results = IIFTrainer.test(cfg, model)
    for task in ("bbox", "segm"):
        assert {"AP", "APr", "APc", "APf"} <= set(results[task])
    record = json.loads((tmp_path / "iif_evaluation.json").read_text())
    assert record["iif_variant"] == "raw" and record["mask_threshold"] == 0.5
    assert record["num_images"] == tiny_lvis[3].num_val_images and record["dataset"] == tiny_lvis[2]
    assert 0 <= record["mean_detections_per_image"] <= 20
    assert record["results"]["bbox"]["AP"] == results["bbox"]["AP"]


def test_iif_evaluator_counts_detections_per_image_from_the_outputs(tiny_lvis, tmp_path):
    """The record's mean is the hand count of the outputs' instances: (3 + 0 + 1) / 3 images."""
    from detectron2.evaluation import DatasetEvaluator

    from iif.evaluation import IIFEvaluator

    class Metrics(DatasetEvaluator):
        def reset(self):
            self.seen = 0

        def process(self, inputs, outputs):
            self.seen += len(outputs)

        def evaluate(self):
            return {"bbox": {"AP": 12.5, "seen": self.seen}}

    cfg = tiny_cfg(tiny_lvis, tmp_path)
    evaluator = IIFEvaluator(cfg, Metrics(), distributed=False)
    evaluator.reset()
    outputs = [{"instances": Instances((8, 8), scores=torch.ones(n))} for n in (3, 0, 1)]
    evaluator.process([{"image_id": i} for i in range(3)], outputs)
    assert evaluator.evaluate() == {"bbox": {"AP": 12.5, "seen": 3}}
    record = json.loads((tmp_path / "iif_evaluation.json").read_text())
    assert record["num_images"] == 3 and record["mean_detections_per_image"] == pytest.approx(4 / 3)
    assert record["results"] == {"bbox": {"AP": 12.5, "seen": 3}}
    assert record["nms_thresh_test"] == cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST
    evaluator.reset()  # a second evaluation starts from zero
    evaluator.process([{"image_id": 0}], outputs[:1])
    evaluator.evaluate()
    assert json.loads((tmp_path / "iif_evaluation.json").read_text())["mean_detections_per_image"] == 3


def _gt_as_predictions(dataset_dicts, drop_classes=()):
    """detectron2-style model outputs equal to the ground truth (score 1)."""
    inputs, outputs = [], []
    for d in dataset_dicts:
        anns = [a for a in d["annotations"] if a["category_id"] not in drop_classes]
        inst = Instances((d["height"], d["width"]))
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.ones(len(anns))
        inst.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
        masks = PolygonMasks([a["segmentation"] for a in anns])
        if len(anns):
            bitmasks = [mask_util.decode(mask_util.merge(mask_util.frPyObjects(p, d["height"], d["width"])))
                        for p in masks.polygons]
            inst.pred_masks = torch.from_numpy(np.stack(bitmasks)).bool()
        else:
            inst.pred_masks = torch.zeros((0, d["height"], d["width"]), dtype=torch.bool)
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def _evaluate(val_name, inputs, outputs):
    evaluator = LVISEvaluator(val_name, distributed=False, max_dets_per_image=300)
    evaluator.reset()
    evaluator.process(inputs, outputs)
    return evaluator.evaluate()


def test_lvis_evaluator_perfect_predictions_and_frequency_groups(tiny_lvis):
    root, _, val_name, _ = tiny_lvis
    dicts = DatasetCatalog.get(val_name)
    results = _evaluate(val_name, *_gt_as_predictions(dicts))
    for task in ("bbox", "segm"):
        for metric in ("AP", "APr", "APc", "APf"):
            assert results[task][metric] == pytest.approx(100.0, abs=1e-6), (task, metric)
    # dropping every detection of the rare classes zeroes APr and leaves APc / APf at 100
    with open(os.path.join(root, "lvis", "lvis_v1_val.json")) as f:
        rare = {c["id"] - 1 for c in json.load(f)["categories"] if c["frequency"] == "r"}
    assert rare
    results = _evaluate(val_name, *_gt_as_predictions(copy.deepcopy(dicts), drop_classes=rare))
    assert results["bbox"]["APr"] == pytest.approx(0.0, abs=1e-6)
    assert results["bbox"]["APf"] == pytest.approx(100.0, abs=1e-6)
    assert results["bbox"]["APc"] == pytest.approx(100.0, abs=1e-6)


def test_missing_lvis_files_name_the_path_and_env_var():
    from iif.datasets import prepare_datasets

    with pytest.raises(FileNotFoundError, match="lvis_v1_val.*lvis_v1_val.json.*DETECTRON2_DATASETS"):
        prepare_datasets(["lvis_v1_val"])
