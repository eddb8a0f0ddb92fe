"""IIFOutputLayers / IIFROIHeads: logits scaled in train and test, loss, gradient, config errors."""
from pathlib import Path

import iif  # noqa: F401  (compat layer first; registers IIFROIHeads)
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from iif.config import add_iif_config
from iif.modeling.fast_rcnn import IIFOutputLayers, NormedLinear

NUM_CLASSES = 3
SYNTHETIC_BASE = (Path(__file__).resolve().parents[2] / "projects" / "IIF" / "configs" / "synthetic"
                  / "Base-IIF-Synthetic.yaml")
DATASET = "iif_test_head_dicts"


@pytest.fixture(scope="module", autouse=True)
def _toy_dataset():
    # class 0 in 3 of 4 images, class 1 in 1, class 2 in none (zero-count rule: treated as 1 image)
    dicts = [
        {"image_id": 1, "annotations": [{"category_id": 0}, {"category_id": 1}]},
        {"image_id": 2, "annotations": [{"category_id": 0}]},
        {"image_id": 3, "annotations": [{"category_id": 0}]},
        {"image_id": 4, "annotations": []},
    ]
    if DATASET in DatasetCatalog.list():
        DatasetCatalog.remove(DATASET)
    DatasetCatalog.register(DATASET, lambda: dicts)
    yield
    DatasetCatalog.remove(DATASET)
    if DATASET in MetadataCatalog.list():
        MetadataCatalog.remove(DATASET)


def make_cfg(enabled=True, **overrides):
    cfg = get_cfg()
    add_iif_config(cfg)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.DATASETS.TRAIN = (DATASET,)
    cfg.MODEL.ROI_BOX_HEAD.IIF.ENABLED = enabled
    cfg.MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE = "dicts"
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    return cfg


EXPECTED_RAW = torch.tensor([torch.log(torch.tensor(4 / 3)).item(), torch.log(torch.tensor(4.0)).item(),
                             torch.log(torch.tensor(4.0)).item(), 1.0])


def _proposals(gt_classes):
    inst = Instances((32, 32))
    n = len(gt_classes)
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]] * n))
    inst.gt_boxes = Boxes(torch.tensor([[1.0, 1.0, 11.0, 11.0]] * n))
    inst.gt_classes = torch.tensor(gt_classes)
    return [inst]


def test_weights_from_dataset_and_logits_scaled():
    head = IIFOutputLayers(make_cfg(), ShapeSpec(channels=8))
    torch.testing.assert_close(head.iif_weights, EXPECTED_RAW)
    assert head.iif_weights.device.type == "cpu"
    assert "iif_weights" in head.state_dict()  # saved with checkpoints
    x = torch.randn(5, 8)
    scores, deltas = head(x)
    raw_scores = head.cls_score(x)
    torch.testing.assert_close(scores, raw_scores * EXPECTED_RAW)
    torch.testing.assert_close(deltas, head.bbox_pred(x))
    # inference: softmax of the scaled logits (same transform as training)
    probs = head.predict_probs((scores, deltas), _proposals([0, 1, 2, 3, 0]))[0]
    torch.testing.assert_close(probs, F.softmax(raw_scores * EXPECTED_RAW, dim=1))


def test_iif_init_constant_and_baseline_default():
    head = IIFOutputLayers(make_cfg(), ShapeSpec(channels=8))
    assert torch.all(head.cls_score.weight == 0.001) and torch.all(head.cls_score.bias == 0)
    base = IIFOutputLayers(make_cfg(enabled=False), ShapeSpec(channels=8))
    assert base.iif_weights is None and base.cls_score.weight.std() > 0.001
    sb = IIFOutputLayers(make_cfg(enabled=False, **{"MODEL.ROI_BOX_HEAD.CLS_INIT": "softmax_baseline"}),
                         ShapeSpec(channels=8))
    assert torch.all(sb.cls_score.bias == -6.5)
    # a cosine IIF classifier keeps the official NormedLinear init, normal(std 0.01), under "auto"
    torch.manual_seed(0)
    cos = IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.CLS_PREDICTOR": "cosine"}), ShapeSpec(channels=256))
    assert isinstance(cos.cls_score, NormedLinear) and cos.iif_weights is not None
    assert cos.cls_score.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert torch.all(cos.cls_score.bias == 0)


def test_loss_is_ce_of_scaled_logits_and_gradient_is_w_times_softmax_residual():
    head = IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.CLS_INIT": "default"}), ShapeSpec(channels=8))
    x = torch.randn(4, 8)
    gt = [0, 1, 3, 2]
    logits = head.cls_score(x).detach().requires_grad_(True)
    scaled = logits * head.iif_weights
    scaled.retain_grad()
    loss = F.cross_entropy(scaled, torch.tensor(gt))
    loss.backward()
    with EventStorage():
        losses = head.losses(head(x), _proposals(gt))
    torch.testing.assert_close(losses["loss_cls"], loss.detach())
    # d loss / d z_c = w_c * (softmax(w*z) - onehot) / n
    expected = head.iif_weights * (F.softmax(scaled.detach(), 1) - F.one_hot(torch.tensor(gt), 4)) / 4
    torch.testing.assert_close(logits.grad, expected)


def test_cosine_classifier():
    head = IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.CLS_PREDICTOR": "cosine",
                                       "MODEL.ROI_BOX_HEAD.COSINE_SCALE": 8.0,
                                       "MODEL.ROI_BOX_HEAD.CLS_INIT": "default"}), ShapeSpec(channels=8))
    assert isinstance(head.cls_score, NormedLinear)
    x = torch.randn(6, 8)
    logits = head.cls_score(x) - head.cls_score.bias
    assert logits.abs().max() <= 8.0 + 1e-5  # |cos| <= 1, times the temperature
    torch.testing.assert_close(head.cls_score(3.7 * x), head.cls_score(x))  # invariant to feature scale


def test_num_classes_mismatch_raises():
    with pytest.raises(ValueError, match="outside \\[0, 1\\)"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_HEADS.NUM_CLASSES": 1}), ShapeSpec(channels=8))
    with pytest.raises(ValueError, match="IIF weights have 4 entries but the model has NUM_CLASSES=5"):
        IIFOutputLayers(ShapeSpec(channels=8), box2box_transform=_b2b(), num_classes=5,
                        iif_weights=EXPECTED_RAW)


def _b2b():
    from detectron2.modeling.box_regression import Box2BoxTransform

    return Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))


def test_nan_weights_refused():
    with pytest.raises(ValueError, match="NaN"):
        IIFOutputLayers(ShapeSpec(channels=8), box2box_transform=_b2b(), num_classes=3,
                        iif_weights=torch.tensor([1.0, float("nan"), 1.0, 1.0]))


def test_sigmoid_and_federated_loss_refused():
    for key in ("USE_SIGMOID_CE", "USE_FED_LOSS"):
        cfg = make_cfg()
        cfg.MODEL.ROI_BOX_HEAD[key] = True
        with pytest.raises(ValueError, match=f"{key}=True is not supported by IIF"):
            IIFOutputLayers(cfg, ShapeSpec(channels=8))


def test_unknown_names_raise():
    with pytest.raises(KeyError, match="unknown IIF variant 'log_adj'; choose one of"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.IIF.VARIANT": "log_adj"}), ShapeSpec(channels=8))
    with pytest.raises(KeyError, match="COUNT_SOURCE"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE": "web"}), ShapeSpec(channels=8))
    with pytest.raises(KeyError, match="CLS_PREDICTOR"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.CLS_PREDICTOR": "mlp"}), ShapeSpec(channels=8))
    with pytest.raises(KeyError, match="CLS_INIT"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.CLS_INIT": "zeros"}), ShapeSpec(channels=8))


def test_json_source_without_json_file_and_csv_without_path():
    with pytest.raises(ValueError, match="no `json_file`"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE": "json"}), ShapeSpec(channels=8))
    with pytest.raises(ValueError, match="CSV_PATH"):
        IIFOutputLayers(make_cfg(**{"MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE": "csv"}), ShapeSpec(channels=8))


def test_roi_heads_registered_and_use_iif_predictor():
    from detectron2.modeling import build_model

    cfg = make_cfg()
    cfg.merge_from_file(str(SYNTHETIC_BASE))
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.DATASETS.TRAIN = (DATASET,)
    cfg.MODEL.ROI_BOX_HEAD.IIF.ENABLED = True
    cfg.MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE = "dicts"
    model = build_model(cfg)
    assert isinstance(model.roi_heads.box_predictor, IIFOutputLayers)
    torch.testing.assert_close(model.roi_heads.box_predictor.iif_weights, EXPECTED_RAW)
