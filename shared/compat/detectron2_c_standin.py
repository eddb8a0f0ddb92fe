"""Stand-in for detectron2's compiled extension module ``detectron2._C``.

``.ci/install.sh`` installs this file as ``detectron2/_C.py`` when detectron2 is installed from the
``pb1-detectron2`` sdist, which ships no C++ sources (and this project may not copy them). Detectron2
imports ``_C`` at module level in a few places, but the models this toolkit uses (Faster/Mask R-CNN,
RetinaNet, Cascade R-CNN with axis-aligned boxes) never call into it: NMS and ROIAlign come from
torchvision. Every compiled op therefore raises ``NotImplementedError`` naming the op and the way around
it, while the three introspection helpers that ``collect_env_info()`` calls answer normally.
"""

from typing import NoReturn

#: Marker that tools and tests use to recognise the stand-in.
IS_STANDIN = True

_HINTS = {
    "rotated": "rotated-box models are not supported by this installation",
    "deform": "deformable convolutions are not supported by this installation",
    "cocoeval": ("import shared.evaluation first (COCOEvaluator's fast path then runs on faster-coco-eval), "
                 "or pass use_fast_impl=False"),
}

_OPS = {
    "box_iou_rotated": "rotated",
    "nms_rotated": "rotated",
    "roi_align_rotated_forward": "rotated",
    "roi_align_rotated_backward": "rotated",
    "deform_conv_forward": "deform",
    "deform_conv_backward_input": "deform",
    "deform_conv_backward_filter": "deform",
    "modulated_deform_conv_forward": "deform",
    "modulated_deform_conv_backward": "deform",
    "InstanceAnnotation": "cocoeval",
    "ImageEvaluation": "cocoeval",
    "COCOevalEvaluateImages": "cocoeval",
    "COCOevalAccumulate": "cocoeval",
}


def get_compiler_version() -> str:
    return "none (detectron2._C is a Python stand-in)"


def get_cuda_version() -> str:
    return "none (detectron2._C is a Python stand-in)"


def has_cuda() -> bool:
    return False


def _unavailable(name: str):
    reason = _HINTS.get(_OPS.get(name, ""), "this compiled op is not available")

    def op(*args, **kwargs) -> NoReturn:
        raise NotImplementedError(
            f"detectron2._C.{name} is not available: detectron2 was installed without its compiled "
            f"extension (pure-Python install from the pb1-detectron2 sdist); {reason}."
        )

    op.__name__ = name
    return op


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable(name)
