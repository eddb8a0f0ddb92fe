"""detectron2's COCOEvaluator (use_fast_impl=True works again, on faster-coco-eval) and LVISEvaluator on the
selected backend give the reference numbers; TEST.EVAL_BACKEND is checked."""
import json
import math

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.data.datasets.lvis import register_lvis_instances
from detectron2.evaluation import COCOEvaluator, coco_evaluation, fast_eval_api

import shared.evaluation as se
from shared.engine.validation import ConfigValueError, run_config_checks
from shared.evaluation.synthetic import random_detection_set


def _register(name, gt, tmp_path, lvis=False):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(gt))
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    if lvis:
        register_lvis_instances(name, {}, str(path), str(tmp_path))
    else:
        register_coco_instances(name, {}, str(path), str(tmp_path))
        DatasetCatalog.get(name)  # fills thing_dataset_id_to_contiguous_id
    return name


def _predictions(results, contiguous):
    by_image = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(dict(r, category_id=contiguous(r["category_id"])))
    return [{"image_id": k, "instances": v} for k, v in by_image.items()]


def _same(a: dict, b: dict):
    assert set(a) == set(b)
    for k in a:
        if math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert abs(a[k] - b[k]) <= 1e-4, k  # percent: 1e-6 as a fraction


def test_detectron2_fast_path_is_rebound():
    assert fast_eval_api.COCOeval_opt is se.FasterCOCOeval
    assert coco_evaluation.COCOeval_opt is se.FasterCOCOeval
    from shared.evaluation import detectron2_patch

    assert detectron2_patch.applied()


@pytest.mark.parametrize("max_dets", [None, 1000])
def test_coco_evaluator_fast_equals_official(max_dets, tmp_path):
    gt, results = random_detection_set(num_images=6, num_classes=5, dets_per_image=1050, seed=7)
    name = _register(f"evalb_coco_{max_dets}", gt, tmp_path)
    mapping = MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id
    out = {}
    for fast in (True, False):
        ev = COCOEvaluator(name, tasks=("bbox",), distributed=False, use_fast_impl=fast,
                           max_dets_per_image=max_dets)
        ev.reset()
        ev._predictions = _predictions(results, mapping.__getitem__)  # what process() collects
        out[fast] = ev.evaluate()["bbox"]
    _same(out[True], out[False])
    assert out[True]["AP"] > 0 and "AP-class_1" in out[True]
    assert math.isnan(out[True]["AP-class_5"])  # a class without GT


def test_build_coco_evaluator_follows_backend(tmp_path):
    gt, _ = random_detection_set(num_images=2, num_classes=2, dets_per_image=3, seed=0)
    name = _register("evalb_coco_backend", gt, tmp_path)
    assert se.build_coco_evaluator(name, "faster_coco_eval", distributed=False)._use_fast_impl is True
    assert se.build_coco_evaluator(name, "pycocotools", distributed=False)._use_fast_impl is False
    with pytest.raises(TypeError, match="backend"):
        se.build_coco_evaluator(name, "pycocotools", use_fast_impl=True)


def test_lvis_evaluator_backends_agree(tmp_path):
    gt, results = random_detection_set(num_images=8, num_classes=10, dets_per_image=310, lvis=True, seed=8)
    name = _register("evalb_lvis", gt, tmp_path, lvis=True)
    out = {}
    for backend in ("faster_coco_eval", "lvis"):
        ev = se.LVISEvaluator(name, tasks=("bbox",), distributed=False, output_dir=str(tmp_path / backend),
                              backend=backend)
        ev.reset()
        ev._predictions = _predictions(results, lambda c: c - 1)  # LVIS: contiguous = json id - 1
        out[backend] = ev.evaluate()["bbox"]
        assert (tmp_path / backend / "lvis_instances_results.json").exists()
    _same(out["faster_coco_eval"], out["lvis"])
    assert list(out["faster_coco_eval"]) == list(se.LVIS_AP_METRICS)
    assert out["faster_coco_eval"]["AP"] > 0


def test_eval_backend_config_key():
    cfg = get_cfg()
    se.add_evaluation_config(cfg)
    assert cfg.TEST.EVAL_BACKEND == "faster_coco_eval"
    cfg.TEST.EVAL_BACKEND = "pycocotools"
    se.add_evaluation_config(cfg)  # idempotent: an existing value is kept
    assert cfg.TEST.EVAL_BACKEND == "pycocotools"
    run_config_checks(cfg, [se.add_evaluation_config])
    cfg.TEST.EVAL_BACKEND = "fast"
    with pytest.raises(ConfigValueError, match="TEST.EVAL_BACKEND"):
        run_config_checks(cfg, [se.add_evaluation_config])


def test_project_configs_have_the_key():
    from iif.config import add_iif_config
    from simd.config import add_simd_config

    for add in (add_simd_config, add_iif_config):
        cfg = get_cfg()
        add(cfg)
        assert cfg.TEST.EVAL_BACKEND == "faster_coco_eval"


@pytest.mark.parametrize("adder_path", ["simd.config:add_simd_config", "iif.config:add_iif_config"])
def test_unknown_eval_backend_is_refused_when_the_config_is_built(adder_path):
    import importlib

    from shared.engine import ConfigValueError, build_cfg

    module, name = adder_path.split(":")
    adder = getattr(importlib.import_module(module), name)
    with pytest.raises(ConfigValueError, match="^TEST.EVAL_BACKEND='cocoapi'"):
        build_cfg(adder, opts=["TEST.EVAL_BACKEND", "cocoapi"])
