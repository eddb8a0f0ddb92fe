"""Train an SSCD teacher and distil an RDCD student for a few iterations on a tiny synthetic set, through
the project's trainer (metrics, checkpoints, resume, evaluation with the shared copy-detection metrics)."""

import json
from pathlib import Path

import rdcd  # noqa: F401
import numpy as np
import pytest
import torch

from rdcd.config import add_rdcd_config
from shared.engine import build_cfg
from rdcd.trainer import RDCDTrainer
from rdcd.evaluation import evaluate_copy_detection_model

SYNTHETIC_BASE = Path(__file__).resolve().parents[2] / "projects/RDCD/configs/synthetic/Base-synthetic.yaml"
METRICS = {"uAP", "accuracy_at_1", "uAP_sn", "accuracy_at_1_sn", "descriptor_dim", "num_background"}


def _cfg(tmp_path, out, **overrides):
    cfg = build_cfg(add_rdcd_config, str(SYNTHETIC_BASE))
    s = cfg.DATASETS.SYNTHETIC_COPY_DETECTION
    s.NUM_REFERENCES, s.NUM_MATCHING_QUERIES, s.NUM_DISTRACTOR_QUERIES, s.NUM_TRAIN, s.IMAGE_SIZE = (
        8,
        4,
        2,
        8,
        32,
    )
    cfg.INPUT.COPY_DETECTION.TRAIN_SIZE = 32
    cfg.INPUT.COPY_DETECTION.TEST_SIZE = 32
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.SOLVER.WARMUP_ITERS = 1
    cfg.SOLVER.MAX_ITER = 2
    cfg.MODEL.RDCD.MOCO.QUEUE = 8
    cfg.MODEL.RDCD.LOSS.KD_QUEUE = 8
    cfg.MODEL.RDCD.KD_DIM = 32
    cfg.MODEL.SSCD.DIM = 32
    cfg.TEST.COPY_DETECTION.K = 3
    cfg.OUTPUT_DIR = str(tmp_path / out)
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


@pytest.fixture()
def datasets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    return tmp_path


def test_teacher_then_student_then_resume(datasets_root):
    tmp_path = datasets_root
    teacher_cfg = _cfg(
        tmp_path, "teacher", **{"MODEL.META_ARCHITECTURE": "SSCD", "MODEL.SSCD.NETWORK": "sscd_r18"}
    )
    teacher = RDCDTrainer(teacher_cfg)
    teacher.resume_or_load(resume=False)
    results = teacher.train()
    assert METRICS <= set(results["synthetic_disc21"])
    assert results["synthetic_disc21"]["num_background"] == 8
    assert 0.0 <= results["synthetic_disc21"]["uAP"] <= 100.0
    log = [json.loads(line) for line in open(tmp_path / "teacher" / "metrics.json")]
    assert any("loss_entropy" in row for row in log)

    student_cfg = _cfg(
        tmp_path,
        "student",
        **{
            "MODEL.RDCD.TEACHER_WEIGHTS": str(tmp_path / "teacher" / "model_final.pth"),
            "MODEL.RDCD.DIM": 8,
        },
    )
    student = RDCDTrainer(student_cfg)
    assert torch.equal(student.model.teacher.fc.weight, teacher.model.network.fc.weight)
    student.resume_or_load(resume=False)
    results = student.train()
    assert results["synthetic_disc21"]["descriptor_dim"] == 8
    queue = student.model.key_queue.features.clone()

    student_cfg.SOLVER.MAX_ITER = 3
    resumed = RDCDTrainer(student_cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 2
    assert torch.equal(resumed.model.key_queue.features, queue)  # queues are checkpointed buffers


def test_perfect_descriptors_give_full_micro_ap(datasets_root):
    """A 'model' that returns each image's exact reference descriptor for copies scores µAP = 100."""
    cfg = _cfg(datasets_root, "oracle")
    cfg.TEST.COPY_DETECTION.SCORE_NORM = False
    from rdcd.datasets import get_copy_detection_dataset

    split = get_copy_detection_dataset("synthetic_disc21", cfg)
    gt = dict(split.ground_truth())
    refs = [i for i, _ in split.images("references")]
    path_to_vector = {}
    rng = np.random.default_rng(0)
    basis = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(64, 16)), dtype=torch.float32), dim=1)
    for n, (image_id, path) in enumerate(split.images("references")):
        path_to_vector[image_id] = basis[n]
    for n, (image_id, path) in enumerate(split.images("queries")):
        path_to_vector[image_id] = basis[refs.index(gt[image_id])] if gt[image_id] else basis[40 + n]

    class Oracle(torch.nn.Module):
        """Looks images up by their pixel sum (unique per generated file in this tiny set)."""

        def __init__(self, table):
            super().__init__()
            self.table = table

        def forward(self, images):
            return torch.stack([self.table[round(float(x.sum()), 2)] for x in images])

    from rdcd.transforms import build_test_transform
    from PIL import Image

    transform = build_test_transform(cfg)
    table = {}
    for part in ("references", "queries"):
        for image_id, path in split.images(part):
            table[round(float(transform(Image.open(path).convert("RGB")).sum()), 2)] = path_to_vector[
                image_id
            ]
    metrics = evaluate_copy_detection_model(cfg, Oracle(table), "synthetic_disc21")
    assert metrics["uAP"] == pytest.approx(100.0)
    assert metrics["accuracy_at_1"] == pytest.approx(100.0)


def test_nan_descriptors_raise(datasets_root):
    cfg = _cfg(datasets_root, "nan")

    class NaNModel(torch.nn.Module):
        def forward(self, images):
            return torch.full((images.shape[0], 4), float("nan"))

    with pytest.raises(FloatingPointError, match="NaN"):
        evaluate_copy_detection_model(cfg, NaNModel(), "synthetic_disc21")
