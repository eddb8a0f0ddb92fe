"""Smoke tests: detectron2 model-zoo detectors build, train one step and run inference on the CPU."""
import numpy as np
import pytest
import torch

import shared  # noqa: F401
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage


def _cfg(zoo_name: str):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(zoo_name))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 100
    cfg.INPUT.MIN_SIZE_TEST = 128
    return cfg


def _batch(with_masks: bool):
    rng = np.random.default_rng(0)
    batch = []
    for _ in range(2):
        image = torch.from_numpy(rng.integers(0, 255, (3, 128, 160), dtype=np.uint8))
        inst = Instances((128, 160))
        inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 50.0, 60.0], [70.0, 20.0, 140.0, 100.0]]))
        inst.gt_classes = torch.tensor([0, 2])
        if with_masks:
            masks = torch.zeros(2, 128, 160, dtype=torch.bool)
            masks[0, 12:60, 10:50] = True
            masks[1, 20:100, 70:140] = True
            inst.gt_masks = BitMasks(masks)
        batch.append({"image": image, "instances": inst, "height": 128, "width": 160})
    return batch


@pytest.mark.parametrize(
    "zoo_name, with_masks",
    [
        ("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", False),
        ("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", True),
    ],
)
def test_model_zoo_rcnn_trains_and_infers_on_cpu(zoo_name, with_masks):
    torch.manual_seed(0)
    model = build_model(_cfg(zoo_name))
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    with EventStorage(0):
        losses = model(_batch(with_masks))
    expected = {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
    expected |= {"loss_mask"} if with_masks else set()
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()

    model.eval()
    with torch.no_grad():
        outputs = model([{k: v for k, v in item.items() if k != "instances"} for item in _batch(False)])
    inst = outputs[0]["instances"]
    assert inst.image_size == (128, 160)
    assert inst.pred_boxes.tensor.shape[1] == 4
    if with_masks:
        assert inst.pred_masks.shape[1:] == (128, 160)
