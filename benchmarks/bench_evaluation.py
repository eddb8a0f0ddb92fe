"""Benchmark of the detection evaluation backends, side by side in one run (shared.evaluation).

Parts:

* ``aitod``: the AI-TOD protocol (SimD's ``ProtocolCOCOeval``: AP@0.25 + 0.50:0.95, very tiny / tiny / small /
  medium areas, maxDets 100/300/1500) on a random set shaped like the AI-TOD test subset of the issue:
  300 images of 800 x 800, ~9.2k GT boxes (Poisson mean 30.7 per image, log-normal sides around 12 px),
  ~227k detections (uniform 14..1,500 per image). Ours = ``backend="faster_coco_eval"``, reference =
  ``backend="pycocotools"``; both start from the same pycocotools ``COCO`` ground truth and the result list.
* ``lvis``: an LVIS-size random set (``--lvis-images``, default 2,000 images, 1,203 classes with r/c/f groups,
  ~12 GT per image, 300 detections per image, ``neg_category_ids`` / ``not_exhaustive_category_ids``).
  Ours = :func:`shared.evaluation.evaluate_lvis` on faster-coco-eval, reference = the same on lvis-api
  (``LVISResults`` + ``LVISEval``), both from one lvis-api ``LVIS`` ground truth.

Every measured call runs in a forked child process: its wall time, its CPU time (user + system, its own
process only: the number to trust on a machine shared with other jobs) and its peak RSS growth (VmHWM minus
the RSS at fork) are its own. Each side runs ``--repeat`` times, the two sides alternating (ours, reference,
ours, ...), and the ratio is that of the medians: a transient slowdown of the machine then reaches both sides
instead of one (ours: with one reference run, the AI-TOD ratio was 0.105 in one run and 0.070-0.081 in the
others on the same code). The metrics of both sides are compared (max |difference| printed).

    .venv/bin/python benchmarks/bench_evaluation.py                        # both parts, full size
    .venv/bin/python benchmarks/bench_evaluation.py --part lvis --lvis-images 500
"""
import argparse
import copy
import json
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time

import shared  # noqa: F401  (compat layer before detectron2 / lvis)
from shared.evaluation.synthetic import random_detection_set
from _common import load_line, pin_threads, verdict


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(fn, queue):
    start_rss = _status_kb("VmRSS")
    c0, t0 = _cpu_seconds(), time.perf_counter()
    metrics = fn()
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    queue.put((seconds, cpu, (_status_kb("VmHWM") - start_rss) / 1024.0, dict(metrics)))


def run_in_child(fn):
    """``(wall seconds, CPU seconds, peak RSS growth in MB, metrics)`` of ``fn()`` run in a forked child."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {proc.exitcode}")
    return out


def alternate(ours, reference, repeat: int) -> tuple:
    """``repeat`` runs of each side in forked children, alternating (ours first): two lists of
    :func:`run_in_child` tuples."""
    runs: tuple = ([], [])
    for _ in range(repeat):
        runs[0].append(run_in_child(ours))
        runs[1].append(run_in_child(reference))
    return runs


def _summary(runs: list) -> tuple:
    """``(wall times, median wall, median CPU, max peak RSS growth, first run's metrics)`` of one side's
    :func:`run_in_child` tuples."""
    times = [t for t, _, _, _ in runs]
    return (times, statistics.median(times), statistics.median(c for _, c, _, _ in runs),
            max(m for _, _, m, _ in runs), runs[0][3])


def compare(name: str, ours: list, refs: list) -> dict:
    times, t_ours, cpu_ours, mem_ours, m_ours = _summary(ours)
    ref_times, t_ref, cpu_ref, mem_ref, m_ref = _summary(refs)
    diff = max(abs(m_ours[k] - m_ref[k]) for k in m_ref)
    row = {"part": name, "ours_s": round(t_ours, 3), "ours_runs_s": [round(t, 3) for t in times],
           "reference_s": round(t_ref, 3), "reference_runs_s": [round(t, 3) for t in ref_times],
           "ratio": round(t_ours / t_ref, 4),
           "ours_cpu_s": round(cpu_ours, 3), "reference_cpu_s": round(cpu_ref, 3),
           "cpu_ratio": round(cpu_ours / cpu_ref, 4),
           "ours_peak_rss_growth_mb": round(mem_ours, 1), "reference_peak_rss_growth_mb": round(mem_ref, 1),
           "max_abs_metric_diff": diff, "AP_ours": m_ours.get("AP"), "AP_reference": m_ref.get("AP")}
    print(json.dumps(row), flush=True)
    return row


def bench_aitod(repeat: int, images: int) -> dict:
    from pycocotools.coco import COCO

    from simd.evaluation import evaluate_coco_results, get_protocol

    t0 = time.perf_counter()
    gt, results = random_detection_set(num_images=images, num_classes=8, gt_per_image=30.7,
                                       dets_per_image=(14, 1500), size_mean=12.0, image_size=(800, 800),
                                       crowd_fraction=0.01, empty_fraction=0.0, classes_without_gt=0, seed=0)
    coco_gt = COCO()
    coco_gt.dataset = gt
    coco_gt.createIndex()
    print(f"aitod set: {len(gt['images'])} images, {len(gt['annotations'])} GT, {len(results)} detections "
          f"(built in {time.perf_counter() - t0:.1f} s)", flush=True)
    protocol = get_protocol("aitod")

    def run(backend):
        return lambda: evaluate_coco_results(coco_gt, results, protocol, backend=backend).metrics

    return compare("aitod", *alternate(run("faster_coco_eval"), run("pycocotools"), repeat))


def bench_lvis(repeat: int, images: int) -> dict:
    from lvis import LVIS

    from shared.evaluation import evaluate_lvis

    t0 = time.perf_counter()
    gt, results = random_detection_set(num_images=images, num_classes=1203, gt_per_image=12.0,
                                       dets_per_image=300, size_mean=40.0, image_size=(480, 640),
                                       classes_without_gt=30, lvis=True, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lvis_random.json")
        with open(path, "w") as f:
            json.dump(gt, f)
        lvis_gt = LVIS(path)
    print(f"lvis set: {len(gt['images'])} images, {len(gt['categories'])} classes, "
          f"{len(gt['annotations'])} GT, {len(results)} detections "
          f"(built in {time.perf_counter() - t0:.1f} s)",
          flush=True)

    def run(backend):
        return lambda: evaluate_lvis(lvis_gt, copy.copy(results), "bbox", max_dets=300, backend=backend)

    return compare("lvis", *alternate(run("faster_coco_eval"), run("lvis"), repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "aitod", "lvis"), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating (median)")
    parser.add_argument("--aitod-images", type=int, default=300)
    parser.add_argument("--lvis-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads")
    args = parser.parse_args()
    pin_threads(args.threads)
    print(load_line(), flush=True)
    rows = []
    if args.part in ("all", "aitod"):
        rows.append(bench_aitod(args.repeat, args.aitod_images))
    if args.part in ("all", "lvis"):
        rows.append(bench_lvis(args.repeat, args.lvis_images))
    for row in rows:
        print(f"{row['part']}: ours {row['ours_s']:.2f} s wall / {row['ours_cpu_s']:.2f} s CPU "
              f"(peak +{row['ours_peak_rss_growth_mb']:.0f} MB), reference {row['reference_s']:.2f} s wall / "
              f"{row['reference_cpu_s']:.2f} s CPU (peak +{row['reference_peak_rss_growth_mb']:.0f} MB), "
              f"ratio {row['ratio']:.3f} wall / {row['cpu_ratio']:.3f} CPU "
              f"({verdict(row['ratio'], '<=', 0.1)}), "
              f"max |metric diff| {row['max_abs_metric_diff']:.2e}")


if __name__ == "__main__":
    main()
