"""Evaluation gathering across processes: detectron2's ``inference_on_dataset`` + ``COCOEvaluator`` give the
same metrics with 2 gloo processes on the CPU (each rank sees a shard, rank 0 gathers) as with one."""
import json
import os
from argparse import Namespace

import numpy as np
import pytest
import torch
from PIL import Image

from shared.engine.launch import launch

NUM_IMAGES = 5  # uneven shards over 2 ranks (3 + 2)
SIZE = 48


def _write_dataset(root: str) -> str:
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(NUM_IMAGES):
        name = f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(os.path.join(root, name))
        images.append({"id": i + 1, "file_name": name, "height": SIZE, "width": SIZE})
        for k in range(3):
            x, y = rng.uniform(2, 30, size=2)
            w, h = rng.uniform(4, 14, size=2)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1 + (i + k) % 2,
                                "bbox": [round(float(v), 2) for v in (x, y, w, h)], "area": float(w * h),
                                "iscrowd": 0})
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}, f)
    return path


class _Detector(torch.nn.Module):
    """Deterministic detections per image: the ground truth shifted by an amount that depends on the image
    and the box, a wrong-class copy, and a background box, with scores that interleave them."""

    def __init__(self, gt_by_image):
        super().__init__()
        self.gt = gt_by_image
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batched_inputs):
        from detectron2.structures import Boxes, Instances

        out = []
        for x in batched_inputs:
            anns = self.gt[x["image_id"]]
            boxes, scores, classes = [], [], []
            for k, (bbox, cls) in enumerate(anns):
                x0, y0, w, h = bbox
                shift = ((x["image_id"] * 7 + k * 3) % 5) * 0.6
                boxes += [[x0 + shift, y0, x0 + w + shift, y0 + h], [x0, y0 + 1, x0 + w, y0 + h + 1]]
                scores += [0.9 - 0.1 * k, 0.35 + 0.05 * k]
                classes += [cls - 1, 2 - cls]
            boxes.append([30.0, 30.0, 44.0, 44.0])
            scores.append(0.5)
            classes.append(0)
            inst = Instances((x["height"], x["width"]))
            inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
            inst.scores = torch.tensor(scores)
            inst.pred_classes = torch.tensor(classes)
            out.append({"instances": inst})
        return out


def _evaluate(args: Namespace) -> None:
    from detectron2.data import DatasetCatalog, DatasetMapper, build_detection_test_loader
    from detectron2.data.datasets import register_coco_instances
    from detectron2.evaluation import COCOEvaluator, inference_on_dataset
    from detectron2.utils import comm

    if args.name not in DatasetCatalog.list():
        register_coco_instances(args.name, {}, args.json, args.root)
    dicts = DatasetCatalog.get(args.name)
    gt = {d["image_id"]: [(a["bbox"], a["category_id"]) for a in d["annotations"]] for d in dicts}
    # registered datasets map category ids to contiguous 0..K-1 (ids 1, 2 -> 0, 1)
    gt = {k: [(b, c + 1) for b, c in v] for k, v in gt.items()}
    loader = build_detection_test_loader(dicts, mapper=DatasetMapper(is_train=False, augmentations=[],
                                                                     image_format="BGR"))
    evaluator = COCOEvaluator(args.name, tasks=("bbox",), distributed=True, output_dir=None,
                              use_fast_impl=False)
    results = inference_on_dataset(_Detector(gt).eval(), loader, evaluator)
    seen = comm.all_gather(len(loader))
    if comm.is_main_process():
        with open(os.path.join(args.out, f"world{comm.get_world_size()}.json"), "w") as f:
            json.dump({"results": results, "images_per_rank": seen}, f)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: a machine without CUDA")
def test_coco_evaluator_metrics_equal_with_one_and_two_processes(tmp_path):
    path = _write_dataset(str(tmp_path))
    args = Namespace(name=f"stack_dist_eval_{os.getpid()}", json=path, root=str(tmp_path), out=str(tmp_path))
    launch(_evaluate, 1, args=(args,))
    launch(_evaluate, 2, dist_url="auto", args=(args,))
    one = json.loads((tmp_path / "world1.json").read_text())
    two = json.loads((tmp_path / "world2.json").read_text())
    assert one["images_per_rank"] == [NUM_IMAGES] and sorted(two["images_per_rank"]) == [2, 3]
    bbox1, bbox2 = one["results"]["bbox"], two["results"]["bbox"]
    assert set(bbox1) == set(bbox2) and "AP-a" in bbox1
    for key in bbox1:
        assert bbox2[key] == pytest.approx(bbox1[key], abs=1e-9, nan_ok=True), key
    assert 5 < bbox1["AP"] < 95  # a non-trivial score: gathering mistakes would move it
