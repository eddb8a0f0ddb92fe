"""IIF under 2 gloo processes on the CPU (``--num-gpus 2`` without CUDA).

* the IIF weights: every rank computes them from the training json's counts; they must be identical on
  both ranks, in the head's buffer too (and equal to ``iif_weight_vector`` of those counts);
* one ``IIFTrainer`` step (Mask R-CNN, IIF head, ``raw`` variant): detectron2 normalises the RPN, box and
  mask losses per process and DDP averages the gradients, so 2 processes equal one process whose loss is
  the mean of the two shard losses. Each rank's shard is recorded inside the trainer's own step and the
  anchor / proposal sampling RNG is seeded per shard, so the 1-process reference (same trainer class,
  initial weights, optimizer) sees exactly the same work;
* evaluation: ``IIFTrainer.test`` (``IIFEvaluator`` wrapping ``LVISEvaluator``) on 5 images split 3 + 2
  over the ranks gives the same bbox / segm metrics and the same detection count (``iif_evaluation.json``)
  as one process. The model is a fixed function of the ground truth (shifted boxes, wrong-class copies),
  so the metrics are non-trivial and do not depend on per-rank BN statistics."""
import copy
import json
import os
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import iif  # noqa: F401  (compat layer first; registers IIFROIHeads)
from iif.config import add_iif_config
from iif.modeling import iif_weights_from_cfg
from iif.trainer import IIFTrainer
from iif.weights import counts_from_lvis_json, iif_weight_vector
from shared.datasets.synthetic_lvis import SyntheticLVISSpec, generate_synthetic_lvis, register_synthetic_lvis
from shared.engine import build_cfg
from shared.engine.launch import launch

CONFIG = str(Path(__file__).resolve().parents[2] / "projects/IIF/configs/synthetic/iif_raw.yaml")
PREFIX = "stack_iif_dist"
SPEC = SyntheticLVISSpec(num_classes=6, num_train_images=8, num_val_images=5, image_size=64, head_images=6,
                         tail_images=1, val_images_per_class=2, min_object_size=12, max_object_size=22,
                         rare_max_images=1, common_max_images=3, seed=5)


def _cfg(out: str):
    return build_cfg(add_iif_config, CONFIG, [
        "DATASETS.TRAIN", f"('{PREFIX}_train',)", "DATASETS.TEST", f"('{PREFIX}_val',)",
        "MODEL.ROI_HEADS.NUM_CLASSES", str(SPEC.num_classes),
        "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
        "INPUT.MAX_SIZE_TEST", "64", "INPUT.RANDOM_FLIP", "none",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "1", "SOLVER.STEPS", "()", "SOLVER.BASE_LR", "0.01",
        "SOLVER.WARMUP_ITERS", "0",
        "SOLVER.REFERENCE_WORLD_SIZE", "0",  # the test compares fixed global batches: no auto-scaling
        "DATALOADER.NUM_WORKERS", "0", "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", "16", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "64", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100",
        "TEST.DETECTIONS_PER_IMAGE", "50", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", out])


def _bn_statistic(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


class _GroundTruthDetector(torch.nn.Module):
    """Per image, for the k-th ground-truth box: the box shifted by an amount that depends on the image and
    k (right class, box-shaped mask), a wrong-class copy with a lower score, and one background box."""

    def __init__(self, gt_by_image: dict):
        super().__init__()
        self.gt = gt_by_image
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    @staticmethod
    def detections_per_image(num_gt: int) -> int:
        return 2 * num_gt + 1

    def forward(self, batched_inputs):
        from detectron2.structures import Boxes, Instances

        out = []
        for x in batched_inputs:
            h, w = x["height"], x["width"]
            boxes, scores, classes = [], [], []
            for k, (box, cls) in enumerate(self.gt[x["image_id"]]):
                x0, y0, x1, y1 = box
                shift = ((x["image_id"] * 7 + k * 3) % 5) * 0.8
                boxes += [[x0 + shift, y0, min(x1 + shift, w), y1], [x0, y0 + 1, x1, min(y1 + 1, h)]]
                scores += [0.9 - 0.05 * k, 0.3 + 0.05 * k]
                classes += [cls, (cls + 1) % SPEC.num_classes]
            boxes.append([2.0, 2.0, 14.0, 14.0])
            scores.append(0.5)
            classes.append(0)
            inst = Instances((h, w))
            inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
            inst.scores = torch.tensor(scores)
            inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
            masks = torch.zeros((len(boxes), h, w), dtype=torch.bool)
            for i, (a, b, c, d) in enumerate(boxes):
                masks[i, int(b):int(d), int(a):int(c)] = True
            inst.pred_masks = masks
            out.append({"instances": inst})
        return out


def _evaluate(cfg, out: str) -> dict:
    """``IIFTrainer.test`` of the ground-truth detector; the metrics, with the images each rank saw."""
    from detectron2.data import DatasetCatalog
    from detectron2.structures import BoxMode
    from detectron2.utils import comm

    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = out
    gt = {d["image_id"]: [(BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS), a["category_id"])
                          for a in d["annotations"]] for d in DatasetCatalog.get(f"{PREFIX}_val")}
    model = _GroundTruthDetector(gt).eval()
    seen = []
    forward = model.forward
    model.forward = lambda inputs: (seen.extend(x["image_id"] for x in inputs), forward(inputs))[1]
    results = IIFTrainer.test(cfg, model)
    return dict(results=results, seen=comm.all_gather(seen),
                expected_detections=sum(model.detections_per_image(len(v)) for v in gt.values()))


def _distributed_run(args: Namespace) -> None:
    from detectron2.utils import comm
    from detectron2.utils.events import EventStorage

    register_synthetic_lvis(args.root, prefix=PREFIX)
    cfg = _cfg(args.out)
    torch.manual_seed(0)
    inner = IIFTrainer(cfg)._trainer
    model = inner.model.module if comm.get_world_size() > 1 else inner.model
    initial = {k: v.clone() for k, v in model.state_dict().items()}  # rank 0's, broadcast by DDP
    # DDP broadcasts rank 0's buffers when it wraps the model, so the buffer alone would not show what rank 1
    # computes: keep both this rank's own computation (what the IIF head's from_config calls) and the buffer
    own_weights, buffer = iif_weights_from_cfg(cfg), model.roi_heads.box_predictor.iif_weights.clone()
    shard, source = [], inner._data_loader_iter

    def recording():
        while True:
            batch = next(source)
            shard.append(copy.deepcopy(batch))
            torch.manual_seed(100 + comm.get_rank())  # anchor / proposal sampling of this shard
            yield batch

    inner._data_loader_iter = recording()
    with EventStorage(0) as inner.storage:
        inner.run_step()
        mean_loss = inner.storage.history("total_loss").latest() if comm.is_main_process() else None
    gathered = comm.all_gather(dict(own_weights=own_weights, buffer=buffer, shard=shard[0],
                                    weights={k: v.detach().clone() for k, v in model.state_dict().items()}))
    evaluation = _evaluate(cfg, os.path.join(args.out, "eval2"))
    if comm.is_main_process():
        torch.save(dict(initial=initial, ranks=gathered, mean_loss=mean_loss, evaluation=evaluation),
                   os.path.join(args.out, "run.pt"))


@pytest.mark.slow  # 20-35 s on 2 CPU cores: three Mask R-CNN trainers, two evaluations
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: a machine without CUDA")
def test_iif_two_processes_equal_one_process_in_training_and_evaluation(tmp_path):
    from detectron2.utils.events import EventStorage

    root = str(tmp_path / "data")
    generate_synthetic_lvis(root, SPEC)
    out = str(tmp_path / "out")
    launch(_distributed_run, 2, dist_url="auto", args=(Namespace(root=root, out=out),))
    run = torch.load(os.path.join(out, "run.pt"), weights_only=False)  # our own file, with Instances
    r0, r1 = run["ranks"]

    # IIF weights: identical on both ranks, and those of the training json's counts
    counts = counts_from_lvis_json(os.path.join(root, "lvis", "lvis_v1_train.json"))
    expected = iif_weight_vector(counts, "raw")
    for r in (r0, r1):
        assert torch.equal(r["own_weights"], r0["own_weights"])
        assert torch.equal(r["buffer"], r0["own_weights"])
    torch.testing.assert_close(r0["own_weights"], expected)
    assert len(set(expected[:-1].tolist())) > 1  # a long tail: the weights differ between classes

    assert len(r0["shard"]) == len(r1["shard"]) == 2  # 4 images / 2 processes
    assert {d["image_id"] for d in r0["shard"]}.isdisjoint({d["image_id"] for d in r1["shard"]})
    for k, v in r0["weights"].items():  # DDP kept the ranks identical (BN statistics stay per rank)
        assert torch.equal(v, r1["weights"][k]) or _bn_statistic(k), k

    # one process, the same global batch: loss = mean of the two shard losses, then the same SGD step.
    # "Equal" = the logged total loss to rel 1e-5 and every trained weight to rtol 1e-5 / atol 1e-8 (the
    # gloo all-reduce sums the two gradients in another order than autograd does here: float32 rounding).
    register_synthetic_lvis(root, prefix=PREFIX)
    cfg = _cfg(out)
    torch.manual_seed(0)
    inner = IIFTrainer(cfg)._trainer
    inner.model.load_state_dict(run["initial"])
    inner.model.train()
    torch.testing.assert_close(inner.model.roi_heads.box_predictor.iif_weights, expected)
    with EventStorage(0):
        losses = []
        for rank, r in enumerate((r0, r1)):
            torch.manual_seed(100 + rank)
            loss_dict = inner.model(r["shard"])
            assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls"} <= set(loss_dict)
            losses.append(sum(loss_dict.values()))
        loss = (losses[0] + losses[1]) / 2
    inner.optimizer.zero_grad()
    loss.backward()
    inner.optimizer.step()
    assert run["mean_loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    after = inner.model.state_dict()
    moved = 0
    for name, value in r0["weights"].items():
        if _bn_statistic(name):
            continue
        torch.testing.assert_close(value, after[name], rtol=1e-5, atol=1e-8, msg=name)
        moved += not torch.equal(value, run["initial"][name])
    assert moved > 10
    cls_score = "roi_heads.box_predictor.cls_score.weight"
    assert not torch.equal(r0["weights"][cls_score], run["initial"][cls_score])

    # evaluation: the same metrics (to 1e-9) and detection counts with 1 and 2 processes
    one = _evaluate(cfg, str(tmp_path / "eval1"))
    two = run["evaluation"]
    assert sorted(len(s) for s in two["seen"]) == [2, 3]  # 5 images split over the ranks
    assert sorted(two["seen"][0] + two["seen"][1]) == sorted(one["seen"][0])
    assert one["expected_detections"] == two["expected_detections"]
    for task in ("bbox", "segm"):
        m1, m2 = one["results"][task], two["results"][task]
        assert set(m1) == set(m2) and {"AP", "APr", "APc", "APf"} <= set(m1)
        for key in m1:
            assert m2[key] == pytest.approx(m1[key], abs=1e-9, nan_ok=True), (task, key)
        assert 5 < m1["AP"] < 95, task  # a non-trivial score: gathering mistakes would move it
    record1 = json.loads((tmp_path / "eval1" / "iif_evaluation.json").read_text())
    record2 = json.loads((Path(out) / "eval2" / "iif_evaluation.json").read_text())
    assert record1["num_images"] == record2["num_images"] == SPEC.num_val_images
    assert record1["mean_detections_per_image"] == record2["mean_detections_per_image"] == pytest.approx(
        one["expected_detections"] / SPEC.num_val_images)
    assert record1["iif_variant"] == record2["iif_variant"] == "raw"
