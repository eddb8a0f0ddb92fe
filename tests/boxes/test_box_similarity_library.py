"""shared.boxes: hand-computed values, SimD reference values, parity with detectron2 / torchvision, edge
cases."""
import math
import subprocess
import sys
import textwrap

import pytest
import torch

import shared.boxes as sb
from shared.boxes import pairwise as pairwise_module

from detectron2.structures import Boxes, pairwise_iou as d2_pairwise_iou  # noqa: E402  (after shared)
from detectron2.modeling.matcher import Matcher  # noqa: E402
import torchvision.ops as tvops  # noqa: E402

KINDS = ("iou", "giou", "diou", "ciou", "nwd", "dotd", "simd")
PARAMS = {"nwd": {"constant": 12.8}, "dotd": {"constant": 12.7}, "simd": {"m": 6.13, "n": 4.59}}
BACKENDS = ("torch", "auto")


def cxcywh(*rows):
    t = torch.tensor(rows, dtype=torch.float32)
    return torch.cat([t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2], dim=1)


def random_boxes(n, seed, size=100.0, max_wh=40.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * max_wh + 1.0
    return torch.cat([xy, xy + wh], dim=1)


# ---------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gt, anchor, expected", [
    ((0, 0, 32, 32), (2, 0, 32, 32), 0.8257),
    ((0, 0, 32, 32), (4, 0, 32, 32), 0.6817),
    ((0, 0, 32, 32), (0, 2, 32, 32), 0.8664),
    ((0, 0, 30, 30), (0, 0, 32, 32), 0.7811),
    ((0, 0, 24, 24), (0, 0, 32, 32), 0.3349),
    ((0, 0, 8, 8), (0, 0, 32, 32), 0.0101),
])
def test_simd_hand_computed_values(gt, anchor, expected, backend):
    value = sb.pairwise_simd(cxcywh(gt), cxcywh(anchor), m=6.13, n=4.59, backend=backend)
    assert value.shape == (1, 1)
    assert value.item() == pytest.approx(expected, abs=5e-5)
    aligned = sb.aligned_similarity("simd", cxcywh(gt), cxcywh(anchor), m=6.13, n=4.59)
    assert aligned.item() == pytest.approx(expected, abs=5e-5)


def test_simd_divide_mode_and_identity():
    gt, anchor = cxcywh((0, 0, 32, 32)), cxcywh((2, 0, 32, 32))
    divided = sb.pairwise_similarity("simd", gt, anchor, m=6.13, n=4.59, norm_mode="divide")
    assert divided.item() == pytest.approx(math.exp(-(2 / 64) / 6.13), rel=1e-6)
    assert sb.pairwise_simd(gt, gt, 6.13, 4.59).item() == 1.0
    far = sb.pairwise_simd(cxcywh((0, 0, 2, 2)), cxcywh((500, 500, 2, 2)), 6.13, 4.59)
    assert far.item() == pytest.approx(1e-6)  # clamped floor


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_iou_family_nwd_dotd(backend):
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    iou = 1 / 7
    def value(kind):
        return sb.pairwise_similarity(kind, a, b, backend=backend, **PARAMS.get(kind, {})).item()
    assert value("iou") == pytest.approx(iou, rel=1e-6)
    assert value("giou") == pytest.approx(iou - 2 / 9, rel=1e-6)            # |C| = 9, union = 7
    assert value("diou") == pytest.approx(iou - 2 / 18, rel=1e-6)           # rho² = 2, c² = 18
    assert value("ciou") == pytest.approx(iou - 2 / 18, rel=1e-6)           # same aspect ratio: v = 0
    assert value("nwd") == pytest.approx(math.exp(-math.sqrt(2) / 12.8), rel=1e-6)
    assert value("dotd") == pytest.approx(math.exp(-math.sqrt(2) / 12.7), rel=1e-6)
    # CIoU with different aspect ratios: [0,0,2,2] vs [0,0,4,2]
    c = torch.tensor([[0.0, 0.0, 4.0, 2.0]])
    v = 4 / math.pi ** 2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    expected = 0.5 - 1 / 20 - v / (1 - 0.5 + v) * v
    assert sb.pairwise_ciou(a, c, backend=backend).item() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_with_detectron2_and_torchvision(backend):
    a, b = random_boxes(37, 1), random_boxes(211, 2)
    torch.testing.assert_close(sb.pairwise_iou(Boxes(a), Boxes(b), backend=backend),
                               d2_pairwise_iou(Boxes(a), Boxes(b)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sb.pairwise_iou(a, b, backend=backend), tvops.box_iou(a, b),
                               rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sb.pairwise_giou(a, b, backend=backend), tvops.generalized_box_iou(a, b),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sb.pairwise_diou(a, b, backend=backend), tvops.distance_box_iou(a, b),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sb.pairwise_ciou(a, b, backend=backend), tvops.complete_box_iou(a, b),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_symmetry_and_aligned_is_diagonal(kind):
    a, b = random_boxes(23, 3), random_boxes(23, 4)
    params = PARAMS.get(kind, {})
    ab = sb.pairwise_similarity(kind, a, b, **params)
    ba = sb.pairwise_similarity(kind, b, a, **params)
    torch.testing.assert_close(ab, ba.T, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(sb.aligned_similarity(kind, a, b, **params), ab.diagonal(),
                               rtol=1e-6, atol=1e-7)


def test_tiled_path_equals_single_tile(monkeypatch):
    a, b = random_boxes(50, 5), random_boxes(300, 6)
    whole = {k: sb.pairwise_similarity(k, a, b, backend="torch", **PARAMS.get(k, {})) for k in KINDS}
    monkeypatch.setattr(pairwise_module, "MIN_TILE_ELEMENTS", 128)
    monkeypatch.setattr(pairwise_module, "MAX_TILE_ELEMENTS", 128)
    assert pairwise_module._tile_shape(50, 300) == (16, 8)  # tiles over rows and columns
    for kind in KINDS:
        tiled = sb.pairwise_similarity(kind, a, b, backend="torch", **PARAMS.get(kind, {}))
        torch.testing.assert_close(tiled, whole[kind], rtol=1e-6, atol=1e-7)  # SIMD vs scalar tails: 1 ulp


def test_cpu_path_runs_on_one_thread_and_restores_the_count(monkeypatch):
    """The PyTorch path's CPU fast path: one intra-op thread for the call, the caller's count afterwards (also
    when the call raises), same values as at one thread."""
    a, b = random_boxes(40, 8), random_boxes(3000, 9)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = sb.pairwise_similarity("simd", a, b, backend="torch", **PARAMS["simd"])
        torch.set_num_threads(2)
        calls = []
        real_set = torch.set_num_threads
        monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real_set(n))[1])
        two = sb.pairwise_similarity("simd", a, b, backend="torch", **PARAMS["simd"])
        assert calls == [1, 2] and torch.get_num_threads() == 2
        assert torch.equal(two, single)

        def failing(*args, **kwargs):
            raise RuntimeError("geometry failed")

        monkeypatch.setattr(pairwise_module.BoxGeometry, "from_xyxy", failing)
        with pytest.raises(RuntimeError, match="geometry failed"):
            sb.pairwise_similarity("iou", a, b, backend="torch")
        assert torch.get_num_threads() == 2
    finally:
        monkeypatch.undo()
        torch.set_num_threads(before)


def _recording_spec(monkeypatch, kind, fail_off_main_thread=False):
    """Make the PyTorch path's formula for ``kind`` record the thread of every tile (optionally raising on a
    thread other than the caller's); returns the list of thread idents."""
    import dataclasses
    import threading

    seen = []
    spec = sb.get_similarity(kind)

    def formula(a, b, **params):
        seen.append(threading.get_ident())
        if fail_off_main_thread and threading.get_ident() != threading.main_thread().ident:
            raise RuntimeError("tile failed on a worker thread")
        return spec.formula(a, b, **params)

    recording = dataclasses.replace(spec, formula=formula)
    monkeypatch.setattr(pairwise_module, "get_similarity", lambda name: recording)
    return seen


def test_cpu_worker_count():
    """Threads that share the columns: the caller's intra-op count, one per 2^20 output elements, one when an
    input requires grad."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        gt, anchors = torch.zeros(1, 4), torch.zeros(1, 4)
        assert pairwise_module._cpu_workers(200, 200_000, gt, anchors) == 2
        assert pairwise_module._cpu_workers(24, 65_472, gt, anchors) == 1  # 1.57M elements: one share
        assert pairwise_module._cpu_workers(32, 65_536, gt, anchors) == 2  # exactly 2 x 2^20
        assert pairwise_module._cpu_workers(200, 200_000, gt, anchors.requires_grad_()) == 1
        torch.set_num_threads(1)
        assert pairwise_module._cpu_workers(200, 200_000, gt, torch.zeros(1, 4)) == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "grad"])
def test_threaded_cpu_path_equals_one_thread(monkeypatch, mode):
    """Two threads share the columns (both compute tiles) and give exactly the values of one thread, in every
    grad mode of the caller (grad and inference modes are thread-local in PyTorch)."""
    a, b = random_boxes(50, 10), random_boxes(3000, 11)
    before = torch.get_num_threads()
    contexts = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "grad": torch.enable_grad}
    monkeypatch.setattr(pairwise_module, "MIN_ELEMENTS_PER_WORKER", 1024)
    same_tiles = pairwise_module.MAX_TILE_ELEMENTS_CPU  # so that both runs compute the same tiles
    monkeypatch.setattr(pairwise_module, "MAX_TILE_ELEMENTS_CPU_THREADS", same_tiles)
    try:
        for kind in KINDS:
            with contexts[mode]():
                torch.set_num_threads(1)
                single = sb.pairwise_similarity(kind, a, b, backend="torch", **PARAMS.get(kind, {}))
                torch.set_num_threads(2)
                with monkeypatch.context() as patch:
                    seen = _recording_spec(patch, kind)
                    two = sb.pairwise_similarity(kind, a, b, backend="torch", **PARAMS.get(kind, {}))
            assert len(set(seen)) == 2 and torch.get_num_threads() == 2
            assert torch.equal(two, single), kind
    finally:
        torch.set_num_threads(before)


def test_threaded_cpu_path_reraises_a_worker_error(monkeypatch):
    """An error on a worker thread reaches the caller (after every thread ended), and the caller's intra-op
    thread count is restored."""
    a, b = random_boxes(50, 12), random_boxes(3000, 13)
    before = torch.get_num_threads()
    monkeypatch.setattr(pairwise_module, "MIN_ELEMENTS_PER_WORKER", 1024)
    try:
        torch.set_num_threads(2)
        _recording_spec(monkeypatch, "simd", fail_off_main_thread=True)
        with pytest.raises(RuntimeError, match="tile failed on a worker thread"):
            sb.pairwise_similarity("simd", a, b, backend="torch", **PARAMS["simd"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("kind", KINDS)
def test_empty_inputs(kind):
    boxes = random_boxes(5, 7)
    empty = torch.zeros((0, 4))
    params = PARAMS.get(kind, {})
    assert sb.pairwise_similarity(kind, empty, boxes, **params).shape == (0, 5)
    assert sb.pairwise_similarity(kind, boxes, empty, **params).shape == (5, 0)
    assert sb.pairwise_similarity(kind, empty, empty, **params).dtype == torch.float32
    assert sb.aligned_similarity(kind, empty, empty, **params).shape == (0,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_degenerate_boxes_are_finite(kind, backend):
    degenerate = torch.tensor([
        [5.0, 5.0, 5.0, 9.0],    # zero width
        [5.0, 5.0, 9.0, 5.0],    # zero height
        [5.0, 5.0, 5.0, 5.0],    # point
        [9.0, 9.0, 5.0, 5.0],    # inverted: treated as a point-size box at its centre
        [0.0, 0.0, 10.0, 10.0],
    ])
    values = sb.pairwise_similarity(kind, degenerate, degenerate, backend=backend, **PARAMS.get(kind, {}))
    assert torch.isfinite(values).all()
    assert values.max() <= 1.0 + 1e-6
    lower = sb.get_similarity(kind).lower_bound
    assert values.min() >= lower - 1e-6
    if kind == "iou":
        assert values[2, 2] == 0 and values[4, 4] == 1  # empty union → 0
    if kind == "simd":
        assert torch.allclose(values.diagonal(), torch.ones(5))


def test_float16_and_float64_dtypes():
    a, b = random_boxes(9, 8), random_boxes(13, 9)
    for kind in KINDS:
        params = PARAMS.get(kind, {})
        ref = sb.pairwise_similarity(kind, a.half().float(), b.half().float(), **params)
        half = sb.pairwise_similarity(kind, a.half(), b.half(), **params)
        assert half.dtype == torch.float32
        torch.testing.assert_close(half, ref, rtol=1e-5, atol=1e-6)
        double = sb.pairwise_similarity(kind, a.double(), b.double(), **params)
        assert double.dtype == torch.float64
        torch.testing.assert_close(double.float(), sb.pairwise_similarity(kind, a, b, **params),
                                   rtol=1e-4, atol=1e-5)


def test_errors_are_clear():
    a = random_boxes(3, 10)
    with pytest.raises(ValueError, match="valid names: iou, giou, diou, ciou, nwd, dotd, simd"):
        sb.pairwise_similarity("wasserstein", a, a)
    with pytest.raises(ValueError, match=r"needs parameter\(s\) \['n'\]"):
        sb.pairwise_similarity("simd", a, a, m=6.13)
    with pytest.raises(ValueError, match="constant"):
        sb.pairwise_similarity("nwd", a, a)
    with pytest.raises(TypeError, match="unexpected parameter"):
        sb.pairwise_similarity("iou", a, a, m=3.0)
    with pytest.raises(ValueError, match="norm_mode"):
        sb.pairwise_similarity("simd", a, a, m=6.13, n=4.59, norm_mode="scale")
    with pytest.raises(ValueError, match="> 0"):
        sb.pairwise_similarity("simd", a, a, m=-1.0, n=4.59)
    with pytest.raises(ValueError, match="NaN"):
        sb.pairwise_iou(torch.tensor([[0.0, 0.0, float("nan"), 1.0]]), a)
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        sb.pairwise_iou(torch.zeros(3, 5), a)
    with pytest.raises(ValueError, match="as many"):
        sb.aligned_similarity("iou", a, a[:2])


def test_unit_interval_mapping_feeds_detectron2_matcher():
    a, b = random_boxes(6, 11), random_boxes(40, 12, size=300)
    assert [k for k in KINDS if sb.needs_unit_interval_mapping(k)] == ["giou", "diou", "ciou"]
    for kind in ("giou", "diou", "ciou"):
        raw = sb.pairwise_similarity(kind, a, b)
        assert raw.min() < 0
        mapped = sb.to_unit_interval(kind, raw)
        assert mapped.min() >= 0 and mapped.max() <= 1
        order = raw.flatten().argsort()
        assert (mapped.flatten()[order].diff() >= 0).all()  # monotone
        Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(mapped)
    assert sb.to_unit_interval("giou", torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.5, 1.0]
    iou = sb.pairwise_iou(a, b)
    assert sb.to_unit_interval("iou", iou) is iou


def test_gradients_of_aligned_forms():
    a = random_boxes(4, 13).double().requires_grad_()
    b = random_boxes(4, 14).double().requires_grad_()
    for kind in ("iou", "giou", "diou", "nwd", "dotd", "simd"):
        params = PARAMS.get(kind, {})
        assert torch.autograd.gradcheck(lambda x, y: sb.aligned_similarity(kind, x, y, **params), (a, b))
    # pairwise with grad-requiring inputs takes the differentiable PyTorch path
    out = sb.pairwise_simd(a.float(), b.detach().float(), 6.13, 4.59)
    out.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()


# ---------------------------------------------------------------------------------------------- memory
def test_tile_budget_keeps_temporaries_below_half_the_output():
    for rows, cols in [(500, 200_000), (200, 200_000), (1, 10_000_000), (3000, 3000)]:
        tile_rows, tile_cols = pairwise_module._tile_shape(rows, cols)
        temporaries = tile_rows * tile_cols * pairwise_module.FORMULA_TEMPORARIES
        assert temporaries <= max(0.5 * rows * cols, pairwise_module.MIN_TILE_ELEMENTS
                                  * pairwise_module.FORMULA_TEMPORARIES)


@pytest.mark.slow  # ~15 s when loaded (fresh interpreter); the tile-budget test above is the default check
def test_measured_peak_memory_of_torch_path():
    """Peak RSS growth of a 500×40,000 SimD matrix (80 MB) stays ≤ 1.5× the output."""
    script = textwrap.dedent("""
        import resource, torch
        torch.set_num_threads(1)
        import shared.boxes as sb
        g = torch.Generator().manual_seed(0)
        def boxes(n):
            xy = torch.rand(n, 2, generator=g) * 800
            return torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 60], 1)
        gt, anchors = boxes(500), boxes(40_000)
        sb.pairwise_simd(gt[:2], anchors[:10], 6.13, 4.59, backend="torch")  # warm up allocator/kernels
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = sb.pairwise_simd(gt, anchors, 6.13, 4.59, backend="torch")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024 / (out.numel() * 4))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ratio = float(result.stdout.strip().splitlines()[-1])
    assert ratio <= 1.5, f"peak memory {ratio:.2f}× the output"


@pytest.mark.cuda
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_matches_cpu(kind):
    a, b = random_boxes(17, 15), random_boxes(333, 16)
    params = PARAMS.get(kind, {})
    cpu = sb.pairwise_similarity(kind, a, b, backend="torch", **params)
    for backend in BACKENDS:
        cuda = sb.pairwise_similarity(kind, a.cuda(), b.cuda(), backend=backend, **params)
        torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-5, atol=1e-6)
