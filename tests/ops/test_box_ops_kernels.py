"""shared.ops: compiled NMS / pairwise kernels vs the pure-PyTorch reference and torchvision; fallback."""

import logging

import pytest
import torch

import shared.boxes as sb
import shared.ops as so
from shared import kernels

import torchvision.ops as tvops  # noqa: E402  (after shared)
from detectron2.structures import Boxes, pairwise_iou as d2_pairwise_iou  # noqa: E402

KINDS = ("iou", "giou", "diou", "ciou", "nwd", "dotd", "simd")
PARAMS = {"nwd": {"constant": 12.8}, "dotd": {"constant": 12.7}, "simd": {"m": 6.13, "n": 4.59}}
NMS_CASES = [("iou", 0.5), ("diou", 0.3), ("nwd", 0.6), ("dotd", 0.4), ("simd", 0.3)]

needs_kernel = pytest.mark.skipif(
    kernels.device_unsupported_reason(torch.zeros(1)) is not None,
    reason=f"shared._box_ops not available ({so.extension_status()})",
)


def random_boxes(n, seed, size=200.0, max_wh=50.0, integer=False):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * max_wh + 1.0
    boxes = torch.cat([xy, xy + wh], dim=1)
    return boxes.round() if integer else boxes


def random_detections(n, seed, classes, tie_scores=False, **kw):
    g = torch.Generator().manual_seed(seed + 1000)
    scores = torch.rand(n, generator=g)
    if tie_scores:
        scores = (scores * 4).round() / 4  # only 5 distinct values
    return random_boxes(n, seed, **kw), scores, torch.randint(0, classes, (n,), generator=g)


def test_extension_status_is_short_and_known():
    status = so.extension_status()
    assert status in ("cpu+cuda kernels", "cpu kernels") or status.startswith("unavailable: ")
    assert "\n" not in status


# ---------------------------------------------------------------------------------------------- NMS
def _adversarial_inputs():
    cases = []
    for seed, classes in [(0, 1), (1, 3), (2, 60)]:
        cases.append((f"random-{classes}cls", *random_detections(300, seed, classes)))
    cases.append(("tied-scores", *random_detections(300, 3, 4, tie_scores=True)))
    boxes, scores, idxs = random_detections(40, 4, 2)
    dup = torch.cat([boxes, boxes, boxes[:10]])  # identical boxes (also with identical scores)
    cases.append(
        (
            "identical-boxes",
            dup,
            torch.cat([scores, scores, scores[:10] * 0.5]),
            torch.cat([idxs, idxs, idxs[:10]]),
        )
    )
    degenerate = torch.tensor(
        [
            [5.0, 5.0, 5.0, 9.0],
            [5.0, 5.0, 9.0, 5.0],
            [5.0, 5.0, 5.0, 5.0],
            [5.0, 5.0, 5.0, 5.0],
            [9.0, 9.0, 5.0, 5.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
        ]
    )
    cases.append(
        (
            "degenerate",
            degenerate,
            torch.tensor([0.9, 0.8, 0.7, 0.7, 0.6, 0.5, 0.5]),
            torch.zeros(7, dtype=torch.long),
        )
    )
    cases.append(("one-box", torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([0.3]), torch.tensor([7])))
    cases.append(("many-classes", *random_detections(400, 5, 400)))
    return cases


@needs_kernel
@pytest.mark.parametrize("kind, threshold", NMS_CASES)
def test_nms_kernel_equals_reference(kind, threshold):
    params = PARAMS.get(kind, {})
    for name, boxes, scores, idxs in _adversarial_inputs():
        kernel = so.batched_similarity_nms(boxes, scores, idxs, kind, threshold, backend="kernel", **params)
        reference = so.reference_batched_similarity_nms(boxes, scores, idxs, kind, threshold, **params)
        assert kernel.dtype == torch.int64
        assert torch.equal(kernel, reference), name
        # kept boxes come sorted by decreasing score
        assert (scores[kernel].diff() <= 0).all(), name


@pytest.mark.parametrize("backend", ["torch", pytest.param("kernel", marks=needs_kernel)])
def test_iou_mode_equals_torchvision_batched_nms_exactly(backend):
    # ≤ 1000 boxes: torchvision uses its coordinate-offset path (integer boxes keep it exact);
    # > 1000 boxes: its per-class path (random float boxes). Distinct scores: torchvision's kernel does not
    # define the order of tied scores (ours: lower index first, checked against the reference above).
    for boxes, scores, idxs in [
        random_detections(600, 6, 5, integer=True),
        random_detections(600, 7, 40, integer=True),
        random_detections(1100, 8, 6, size=400.0),
    ]:
        for threshold in (0.3, 0.7):
            expected = tvops.batched_nms(boxes, scores, idxs, threshold)
            got = so.batched_similarity_nms(boxes, scores, idxs, "iou", threshold, backend=backend)
            assert torch.equal(got, expected)


@pytest.mark.parametrize("backend", ["torch", pytest.param("kernel", marks=needs_kernel)])
def test_nms_zero_boxes_float16_and_boxes_input(backend):
    empty = so.batched_similarity_nms(
        torch.zeros((0, 4)),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        "simd",
        0.5,
        backend=backend,
        m=6.13,
        n=4.59,
    )
    assert empty.shape == (0,) and empty.dtype == torch.int64
    boxes, scores, idxs = random_detections(200, 9, 3)
    half = so.batched_similarity_nms(
        Boxes(boxes.half()), scores.half(), idxs, "simd", 0.3, backend=backend, m=6.13, n=4.59
    )
    full = so.reference_batched_similarity_nms(
        boxes.half().float(), scores.half().float(), idxs, "simd", 0.3, m=6.13, n=4.59
    )
    assert torch.equal(half, full)


def test_nms_suppresses_within_class_only_hand_example():
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    idxs = torch.tensor([0, 0, 1, 0])
    for backend in ("torch", "auto"):
        # SimD(box0, box1) = exp(-6.13 * 1/20) = 0.736 > 0.5 → box 1 suppressed; box 2 is another class
        kept = so.batched_similarity_nms(boxes, scores, idxs, "simd", 0.5, backend=backend, m=6.13, n=4.59)
        assert kept.tolist() == [0, 2, 3]
        kept = so.batched_similarity_nms(boxes, scores, idxs, "simd", 0.75, backend=backend, m=6.13, n=4.59)
        assert kept.tolist() == [0, 1, 2, 3]


def test_nms_errors():
    boxes, scores, idxs = random_detections(5, 10, 2)
    with pytest.raises(ValueError, match="valid names: iou, diou, nwd, dotd, simd"):
        so.batched_similarity_nms(boxes, scores, idxs, "giou", 0.5)
    with pytest.raises(ValueError, match="needs parameter"):
        so.batched_similarity_nms(boxes, scores, idxs, "simd", 0.5)
    with pytest.raises(ValueError, match="shape"):
        so.batched_similarity_nms(boxes, scores[:3], idxs, "iou", 0.5)
    with pytest.raises(ValueError, match="NaN"):
        so.batched_similarity_nms(boxes, torch.full((5,), float("nan")), idxs, "iou", 0.5)


# ---------------------------------------------------------------------------------------------- pairwise
@needs_kernel
@pytest.mark.parametrize("kind", KINDS)
def test_pairwise_kernel_equals_torch_path(kind):
    params = PARAMS.get(kind, {})
    a = torch.cat([random_boxes(30, 11), torch.tensor([[5.0, 5.0, 5.0, 5.0], [9.0, 9.0, 5.0, 5.0]])])
    b = torch.cat(
        [random_boxes(500, 12, size=600.0), torch.tensor([[5.0, 5.0, 5.0, 9.0], [0.0, 0.0, 0.0, 0.0]])]
    )
    for dtype in (torch.float32, torch.float16):
        kernel = sb.pairwise_similarity(kind, a.to(dtype), b.to(dtype), backend="kernel", **params)
        reference = sb.pairwise_similarity(kind, a.to(dtype), b.to(dtype), backend="torch", **params)
        assert kernel.dtype == torch.float32 and torch.isfinite(kernel).all()
        torch.testing.assert_close(kernel, reference, rtol=3e-5, atol=1e-6)
    if kind == "iou":  # bit-identical to detectron2
        assert torch.equal(
            sb.pairwise_iou(Boxes(a), Boxes(b), backend="kernel"), d2_pairwise_iou(Boxes(a), Boxes(b))
        )


@needs_kernel
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_and_torch_agree_at_extreme_float32_coordinates(kind):
    # up to 1e18: the same finite values; beyond (1e19 used to give 1.65e38 from the NWD/DotD kernels, NaN
    # from
    # GIoU/DIoU/CIoU, inf from IoU): the same clear error from both backends and from the NMS
    params = PARAMS.get(kind, {})
    s = 2.4e17  # largest coordinate 4 * s = 9.6e17
    a = torch.tensor([[s, s, 2 * s, 3 * s], [0.0, 0.0, 10.0, 10.0], [-s, -s, 0.5 * s, s]])
    b = torch.tensor([[0.5 * s, s, 2 * s, 4 * s], [s, s, s + 5e13, s + 5e13], [0.0, 0.0, 1.0, 1.0]])
    kernel = sb.pairwise_similarity(kind, a, b, backend="kernel", **params)
    reference = sb.pairwise_similarity(kind, a, b, backend="torch", **params)
    assert torch.isfinite(kernel).all() and torch.isfinite(reference).all()
    torch.testing.assert_close(kernel, reference, rtol=3e-5, atol=1e-6)
    huge = torch.tensor([[1e19, 1e19, 3e19, 3e19], [0.0, 0.0, 10.0, 10.0]])
    for backend in ("kernel", "torch"):
        with pytest.raises(ValueError, match="exceeds 1e\\+18.*float64"):
            sb.pairwise_similarity(kind, huge, b, backend=backend, **params)
    if kind in so.NMS_KINDS:
        with pytest.raises(ValueError, match="exceeds 1e\\+18"):
            so.batched_similarity_nms(
                huge, torch.ones(2), torch.zeros(2, dtype=torch.int64), kind, 0.5, **params
            )
    # float64 is computed by PyTorch and stays exact far beyond
    assert torch.isfinite(sb.pairwise_similarity(kind, huge.double(), b.double(), **params)).all()


@needs_kernel
def test_auto_backend_uses_kernel_and_grad_inputs_use_torch(monkeypatch):
    calls = []
    original = kernels.pairwise_kernel
    monkeypatch.setattr(kernels, "pairwise_kernel", lambda *args: calls.append(args[0]) or original(*args))
    a, b = random_boxes(4, 13), random_boxes(6, 14)
    sb.pairwise_simd(a, b, 6.13, 4.59)
    assert calls == ["simd"]
    sb.pairwise_simd(a.requires_grad_(), b, 6.13, 4.59).sum().backward()
    sb.pairwise_simd(a.double(), b.double(), 6.13, 4.59)
    assert calls == ["simd"]


# ---------------------------------------------------------------------------------------------- fallback
def test_fallback_logs_one_line_and_still_works(monkeypatch, caplog):
    monkeypatch.setenv("SHARED_BOX_OPS_DISABLE", "1")
    monkeypatch.setattr(kernels, "_STATE", None)
    with caplog.at_level(logging.WARNING, logger="shared.kernels"):
        assert so.extension_status() == "unavailable: disabled by SHARED_BOX_OPS_DISABLE=1"
        boxes, scores, idxs = random_detections(50, 15, 2)
        kept = so.batched_similarity_nms(boxes, scores, idxs, "iou", 0.5)
        assert torch.equal(kept, tvops.batched_nms(boxes, scores, idxs, 0.5))
        sb.pairwise_simd(boxes, boxes, 6.13, 4.59)
        with pytest.raises(RuntimeError, match="cannot be used"):
            so.batched_similarity_nms(boxes, scores, idxs, "iou", 0.5, backend="kernel")
    records = [r for r in caplog.records if r.name == "shared.kernels"]
    assert len(records) == 1 and "pure-PyTorch fallback" in records[0].getMessage()


@pytest.mark.cuda
@pytest.mark.parametrize("kind, threshold", NMS_CASES)
def test_cuda_nms_and_pairwise_equal_cpu_reference(kind, threshold):
    params = PARAMS.get(kind, {})
    for name, boxes, scores, idxs in _adversarial_inputs():
        expected = so.reference_batched_similarity_nms(boxes, scores, idxs, kind, threshold, **params)
        got = so.batched_similarity_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), kind, threshold, **params)
        assert torch.equal(got.cpu(), expected), name
    a, b = random_boxes(30, 16), random_boxes(700, 17)
    on_gpu = sb.pairwise_similarity(kind, a.cuda(), b.cuda(), backend="kernel", **params).cpu()
    on_cpu = sb.pairwise_similarity(kind, a, b, backend="torch", **params)
    torch.testing.assert_close(on_gpu, on_cpu, rtol=3e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- CPU targets
@needs_kernel
def test_cpu_targets_listed_in_order_and_unknown_target_is_refused():
    targets = kernels.cpu_targets()
    assert targets[0] == "default"
    assert targets == [t for t in ("default", "avx2", "avx2+fma") if t in targets]
    with pytest.raises(ValueError, match="'sse9' is unknown or not supported"):
        with kernels.use_cpu_target("sse9"):
            pass


@needs_kernel
@pytest.mark.parametrize("target", kernels.cpu_targets() or ["default"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_cpu_target_equals_reference(target, kind):
    """Each instruction-set copy of the row loops, called explicitly: pairwise against the PyTorch path
    (IoU bit-identical to detectron2) and NMS against the pure-PyTorch reference."""
    params = PARAMS.get(kind, {})
    a = torch.cat([random_boxes(37, 21), torch.tensor([[5.0, 5.0, 5.0, 5.0], [9.0, 9.0, 5.0, 5.0]])])
    b = torch.cat([random_boxes(203, 22, size=300.0), torch.tensor([[5.0, 5.0, 5.0, 9.0]])])
    reference = sb.pairwise_similarity(kind, a, b, backend="torch", **params)
    with kernels.use_cpu_target(target) as active:
        assert active == target
        kernel = sb.pairwise_similarity(kind, a, b, backend="kernel", **params)
        kept = {}
        if kind in so.NMS_KINDS:
            threshold = dict(NMS_CASES)[kind]
            for name, boxes, scores, idxs in _adversarial_inputs():
                kept[name] = (
                    so.batched_similarity_nms(boxes, scores, idxs, kind, threshold, backend="kernel",
                                              **params),
                    so.reference_batched_similarity_nms(boxes, scores, idxs, kind, threshold, **params),
                )
    torch.testing.assert_close(kernel, reference, rtol=3e-5, atol=1e-6)
    if kind == "iou":
        assert torch.equal(kernel, d2_pairwise_iou(Boxes(a), Boxes(b)))
    for name, (got, expected) in kept.items():
        assert torch.equal(got, expected), name
