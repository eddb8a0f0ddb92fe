"""Each compatibility fix of ``shared.compat``, exercised through the code path it repairs."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import shared.compat


def test_fixes_are_recorded_and_idempotent():
    before = shared.compat.applied_fixes()
    shared.compat.apply()
    assert shared.compat.applied_fixes() == before


def test_pil_linear_alias_detectron2_extent_transform():
    # transform.py:46 uses Image.LINEAR as a default argument, evaluated at import time.
    from detectron2.data.transforms import ExtentTransform

    img = (np.arange(16 * 16 * 3) % 255).astype(np.uint8).reshape(16, 16, 3)
    out = ExtentTransform(src_rect=(0, 0, 16, 16), output_size=(8, 8)).apply_image(img)
    assert out.shape == (8, 8, 3)
    assert Image.LINEAR == Image.Resampling.BILINEAR


def test_pkg_resources_standin_model_zoo_config():
    from detectron2 import model_zoo

    path = model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml")
    assert path.endswith("faster_rcnn_R_50_FPN_1x.yaml")
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    assert cfg.MODEL.MASK_ON


def test_model_zoo_ships_all_config_files():
    import os

    from detectron2 import model_zoo

    root = os.path.dirname(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    names = [f for _, _, files in os.walk(root) for f in files]
    # detectron2 v0.6 ships 92 yaml configs and 36 LazyConfig .py files (164 files once .pyc caches exist)
    assert sum(f.endswith(".yaml") for f in names) == 92
    assert sum(f.endswith(".py") for f in names) == 36


def test_numpy_aliases_lvis_accumulate_path():
    # lvis/eval.py:361 allocates with dtype=np.float
    assert np.float is float and np.int is int
    assert np.zeros(3, dtype=np.float).dtype == np.float64


def test_fastreid_imports_collections_mapping_and_torch_six():
    import fastreid.data.build  # noqa: F401  (torch._six and collections.Mapping at import time)
    from fastreid.evaluation.testing import flatten_results_dict

    assert flatten_results_dict({"a": {"b": 1.0}}) == {"a/b": 1.0}
    from torch._six import string_classes

    assert str in string_classes


def test_fastreid_dataloaderx_runs_on_cpu():
    from fastreid.data import build

    ds = [{"images": torch.full((3,), float(i)), "targets": i} for i in range(6)]
    loader = build.DataLoaderX(0, dataset=ds, batch_size=4, collate_fn=build.fast_batch_collator)
    batches = list(iter(loader))
    assert [b["targets"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]]
    assert batches[0]["images"].device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_fresh_interpreter_gets_fixes_from_any_project_package():
    code = (
        "import das\n"
        "from detectron2 import model_zoo\n"
        "import detectron2.engine, fastreid.data.build, lvis\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_detectron2_c_standin_names_the_missing_op():
    from detectron2 import _C

    if not getattr(_C, "IS_STANDIN", False):
        pytest.skip("an official compiled detectron2 is installed")
    assert isinstance(_C.get_compiler_version(), str)
    assert isinstance(_C.get_cuda_version(), str)
    assert _C.has_cuda() is False
    with pytest.raises(NotImplementedError, match="box_iou_rotated.*rotated-box"):
        _C.box_iou_rotated(torch.zeros(1, 5), torch.zeros(1, 5))
    with pytest.raises(NotImplementedError, match="use_fast_impl=False"):
        _C.COCOevalAccumulate({}, [])
    from detectron2.layers import DeformConv

    with pytest.raises(NotImplementedError, match="deform_conv_forward.*deformable"):
        _C.deform_conv_forward()
    # On CPU detectron2 0.6 routes DeformConv through torchvision, so it still runs.
    conv = DeformConv(2, 2, 3, padding=1)
    assert conv(torch.zeros(1, 2, 4, 4), torch.zeros(1, 18, 4, 4)).shape == (1, 2, 4, 4)


def test_collect_env_works_with_standin():
    from detectron2.utils.collect_env import collect_env_info

    assert "detectron2" in collect_env_info()


# --- detectron2 v0.6 defects repaired by shared.compat.detectron2_fixes ------------------------------------

def _tiny_faster_rcnn():
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    model = build_model(cfg).eval()
    image = torch.rand(3, 96, 128) * 255
    return cfg, model, [{"image": image, "height": 96, "width": 128}]


def test_detectron2_export_imports_without_caffe2_and_traces_faster_rcnn():
    # detectron2/export/api.py imports caffe2.proto at module level; without the fix this import fails.
    from detectron2.export import Caffe2Tracer, TracingAdapter, add_export_config, scripting_with_instances

    assert callable(scripting_with_instances)
    cfg, model, inputs = _tiny_faster_rcnn()
    assert add_export_config(cfg.clone()).EXPORT_CAFFE2.USE_HEATMAP_MAX_KEYPOINT is False
    with pytest.raises(ImportError, match="caffe2"):
        Caffe2Tracer(cfg, model, inputs)

    def inference(model, inputs):  # without postprocessing: boxes in the input resolution
        return [{"instances": r} for r in model.inference(inputs, do_postprocess=False)]

    adapter = TracingAdapter(model, [{"image": inputs[0]["image"]}], inference)  # tensors only
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
        eager = adapter(*adapter.flattened_inputs)
        outputs = traced(*adapter.flattened_inputs)
    assert len(outputs) == len(eager) and len(eager) >= 3  # boxes, classes, scores
    for a, b in zip(eager, outputs):
        torch.testing.assert_close(a, b)
    rebuilt = adapter.outputs_schema(outputs)[0]["instances"]
    assert rebuilt.pred_boxes.tensor.shape[0] == eager[0].shape[0]


def test_detectron2_torchscript_scripting_of_faster_rcnn():
    from detectron2.export import scripting_with_instances
    from detectron2.structures import Boxes

    _, model, inputs = _tiny_faster_rcnn()
    fields = {"proposal_boxes": Boxes, "objectness_logits": torch.Tensor, "pred_boxes": Boxes,
              "scores": torch.Tensor, "pred_classes": torch.Tensor}
    scripted = scripting_with_instances(model, fields)
    images = [{"image": inputs[0]["image"]}]
    with torch.no_grad():
        eager = model.inference(images, do_postprocess=False)[0]
        out = scripted.inference(images, do_postprocess=False)[0]
    assert len(eager) == 20
    torch.testing.assert_close(out.pred_boxes.tensor, eager.pred_boxes.tensor)
    torch.testing.assert_close(out.scores, eager.scores)
    assert torch.equal(out.pred_classes, eager.pred_classes)


def test_detectron2_model_analysis_counts_faster_rcnn():
    from detectron2.utils.analysis import flop_count_operators, parameter_count

    _, model, inputs = _tiny_faster_rcnn()
    params = parameter_count(model)
    assert params[""] == sum(p.numel() for p in model.parameters())
    flops = flop_count_operators(model, inputs)
    # ResNet-18 FPN at 96x128 (padded to 96x128, divisible by 32): convolutions dominate, linear layers of
    # the box head are counted too
    assert flops["conv"] > 0.5 and flops["linear"] > 0


def test_detectron2_map_dataset_retries_a_dropped_sample():
    # detectron2/data/common.py: random.sample(set, k=1) raises TypeError on Python >= 3.11
    from detectron2.data.common import MapDataset

    def mapper(x):  # e.g. a crop that dropped every box of this image
        return None if x % 3 == 0 else x * 10

    ds = MapDataset(list(range(9)), mapper)
    out = [ds[i] for i in range(9)]
    assert all(v is not None and v % 10 == 0 and (v // 10) % 3 != 0 for v in out)
    assert out[1] == 10 and out[2] == 20  # untouched when the mapper succeeds
    never = MapDataset(list(range(4)), lambda x: None)
    with pytest.raises(RuntimeError, match="returned None for every element"):
        never[0]


def test_detectron2_lr_scheduler_hook_resumes_torch2_scheduler(tmp_path):
    # hooks.LRScheduler only checkpointed torch.optim.lr_scheduler._LRScheduler; torch 2's StepLR is not one
    from detectron2.checkpoint import Checkpointer
    from detectron2.engine import SimpleTrainer, hooks

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, batch):
            return {"loss": (self.w * batch).sum()}

    def loader():
        while True:
            yield torch.ones(2)

    def run(max_iter: int, resume: bool):
        model = Model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1 if not resume else 123.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
        trainer = SimpleTrainer(model, loader(), opt)
        ckpt = Checkpointer(model, str(tmp_path), optimizer=opt, trainer=trainer)
        trainer.register_hooks([hooks.LRScheduler(scheduler=sched), hooks.PeriodicCheckpointer(ckpt, 10)])
        if resume:
            ckpt.resume_or_load("", resume=True)
            return trainer, sched, opt
        trainer.train(0, max_iter)
        return trainer, sched, opt

    _, sched, opt = run(10, resume=False)
    assert sched.last_epoch == 10 and opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 2)
    trainer, sched, opt = run(10, resume=True)
    assert trainer.iter == 9
    assert sched.last_epoch == 10  # 0 before the fix: the schedule restarted
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_detectron2_polygon_crop_uses_shapely():
    # fvcore CropTransform.apply_polygons (detectron2's crop of polygon masks) imports shapely
    from detectron2.data.transforms import CropTransform

    crop = CropTransform(10, 10, 20, 20)
    square = np.array([[0, 0], [20, 0], [20, 20], [0, 20]], dtype=np.float64)
    (clipped,) = crop.apply_polygons([square])
    assert sorted(map(tuple, clipped.tolist())) == [(0.0, 0.0), (0.0, 10.0), (10.0, 0.0), (10.0, 10.0)]
    # an upside-down U whose two legs cross the window and whose bar lies below it: two polygons
    u_shape = np.array([[12, 0], [14, 0], [14, 32], [26, 32], [26, 0], [28, 0], [28, 40], [12, 40]], float)
    parts = sorted(crop.apply_polygons([u_shape]), key=lambda p: p[:, 0].min())
    assert len(parts) == 2
    assert [(p[:, 0].min(), p[:, 0].max(), p[:, 1].min(), p[:, 1].max()) for p in parts] == [
        (2.0, 4.0, 0.0, 20.0), (16.0, 18.0, 0.0, 20.0)]


def test_detectron2_lazy_config_to_py_formats_with_black():
    from detectron2.config import LazyCall, LazyConfig
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": LazyCall(torch.nn.Linear)(in_features=3, out_features=2), "lr": 0.1})
    code = LazyConfig.to_py(cfg)
    assert code == "cfg.lr = 0.1\ncfg.model = torch.nn.Linear(in_features=3, out_features=2)\n"


def test_pycocotools_loads_segmentation_only_results_twice():
    # loadRes writes a numpy box into the caller's dicts; the second load compared it with [] (numpy >= 1.25
    # raised ValueError). Now the second load takes the box branch, as with older numpy.
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    mask = np.zeros((20, 30), dtype=np.uint8, order="F")
    mask[2:12, 5:25] = 1
    rle = mask_utils.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    results = [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": rle}]
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": 20, "width": 30}], "categories": [{"id": 1}],
                    "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        first = coco.loadRes(results)
        second = coco.loadRes(results)
    assert list(first.anns[1]["bbox"]) == [5.0, 2.0, 20.0, 10.0]
    assert second.anns[1]["bbox"] == [5.0, 2.0, 20.0, 10.0] and second.anns[1]["area"] == 200.0
    assert "pycocotools.COCO.loadRes" in shared.compat.applied_fixes()
