"""Benchmark of shared.retrieval against the reference implementations, side by side in one run.

Parts (each runs in its own subprocess so that its peak memory is its own):

* ``reid``: Market-1501 size (3,368 queries x 15,913 gallery, 2048-d synthetic features). Ranking-and-metrics
  step on the same float32 distance matrix: ``evaluate_reid`` vs FastReID's ``evaluate_rank`` (Cython path);
  end to end including the distance computation: ``evaluate_reid_features`` vs FastReID ``build_dist`` +
  ``evaluate_rank``. Results are checked to be identical (CMC exactly, mAP/mINP within 1e-6).
* ``ml``: SOP size (60,502 x 128-d, 11,316 classes): ``evaluate_embeddings`` vs PML ``AccuracyCalculator``
  with ``FaissKNN``/``FaissKMeans`` for the same metrics (Recall@1/10/100/1000, MAP@R, R-precision, NMI).
* ``cd``: copy detection, 50,000 queries x 200,000 references, 256-d synthetic descriptors, k = 10, with score
  normalisation against a background set; end-to-end time and peak RSS.
* ``cd1m``: the same at DISC21 scale, 25,000 queries (DISC21's dev_queries_25k) x 1,000,000 references x
  256-d, 100,000 background descriptors, on the CPU (faiss exact search, queries in chunks of 16,384).

Each timing: one warm-up on a small slice, then ``--repeat`` runs alternating ours / reference; the median is
used.

    .venv/bin/python benchmarks/bench_retrieval.py                 # all parts .venv/bin/python
    benchmarks/bench_retrieval.py --part reid --repeat 3
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import shared  # noqa: F401  (compat layer before fastreid / pml)
from _common import load_line, pin_threads, verdict


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ------------------------------------------------------------------------------------------------------ ReID
def reid_features(nq=3368, ng=15913, d=2048, n_ids=750, n_cams=6, noise=2.0, seed=0):
    """Synthetic Market-1501-shaped features: identity centre + camera offset + noise; 2 distractor pids
    (0, -1 like Market's junk are not used: pid 0 = distractors stay in the gallery)."""
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(0, n_ids + 1, ng)  # pid 0 = distractors
    q_pids = rng.integers(1, n_ids + 1, nq)
    g_cams, q_cams = rng.integers(0, n_cams, ng), rng.integers(0, n_cams, nq)
    centres = rng.standard_normal((n_ids + 1, d), dtype=np.float32)
    cam_offsets = 0.5 * rng.standard_normal((n_cams, d), dtype=np.float32)
    qf = centres[q_pids] + cam_offsets[q_cams] + noise * rng.standard_normal((nq, d), dtype=np.float32)
    gf = centres[g_pids] + cam_offsets[g_cams] + noise * rng.standard_normal((ng, d), dtype=np.float32)
    gf[g_pids == 0] = noise * rng.standard_normal((int((g_pids == 0).sum()), d), dtype=np.float32)
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def bench_reid(repeat: int, noise: float) -> dict:
    import torch
    from fastreid.evaluation import rank as fr_rank
    from fastreid.utils.compute_dist import build_dist

    from shared.retrieval.reid import evaluate_reid, evaluate_reid_features

    assert fr_rank.IS_CYTHON_AVAI, "fastreid rank_cy is not built"
    qf, gf, qp, gp, qc, gc = reid_features(noise=noise)
    qt, gt = torch.from_numpy(qf), torch.from_numpy(gf)
    # warm-up (small slices)
    d_small = build_dist(qt[:64], gt, "cosine")
    fr_rank.evaluate_rank(d_small, qp[:64], gp, qc[:64], gc, 50)
    evaluate_reid(d_small, qp[:64], gp, qc[:64], gc)
    evaluate_reid_features(qf[:64], gf, qp[:64], gp, qc[:64], gc)
    t = {"fr_dist": [], "fr_rank": [], "ours_rank": [], "ours_e2e": []}
    for _ in range(repeat):
        td, dist = _timed(lambda: build_dist(qt, gt, "cosine"))
        tr, ref = _timed(lambda d=dist: fr_rank.evaluate_rank(d, qp, gp, qc, gc, 50, use_cython=True))
        to, ours = _timed(lambda d=dist: evaluate_reid(d, qp, gp, qc, gc, 50))
        del dist
        te, ours_e2e = _timed(lambda: evaluate_reid_features(qf, gf, qp, gp, qc, gc, metric="cosine"))
        t["fr_dist"].append(td)
        t["fr_rank"].append(tr)
        t["ours_rank"].append(to)
        t["ours_e2e"].append(te)
    cmc, all_ap, all_inp = ref
    identical = {
        "cmc_equal": bool(np.array_equal(cmc, ours.cmc)),
        "cmc_equal_e2e": bool(np.array_equal(cmc, ours_e2e.cmc)),
        "mAP_abs_diff": abs(float(np.mean(all_ap)) - ours.mAP / 100),
        "mINP_abs_diff": abs(float(np.mean(all_inp)) - ours.mINP / 100),
        "mAP_abs_diff_e2e": abs(float(np.mean(all_ap)) - ours_e2e.mAP / 100),
    }
    med = {k: statistics.median(v) for k, v in t.items()}
    fr_e2e = statistics.median([a + b for a, b in zip(t["fr_dist"], t["fr_rank"])])
    return {
        "part": "reid", "noise": noise, "repeat": repeat, "result": ours.as_dict(), "identical": identical,
        "median_s": {**med, "fr_e2e": fr_e2e},
        "ratio_rank": med["ours_rank"] / med["fr_rank"],
        "ratio_e2e": med["ours_e2e"] / fr_e2e,
        "peak_rss_mb": _peak_rss_mb(),
    }


# ------------------------------------------------------------------------------------------- metric learning
def sop_embeddings(n=60502, n_classes=11316, d=128, noise=1.25, seed=0):
    """SOP-shaped embeddings: 11,316 classes of 2..12 images (60,502 in total), class centre + noise
    (noise 1.25 gives R@1 ~ 78, close to published SOP models)."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_classes, 2)
    extra = n - sizes.sum()
    while extra > 0:  # spread the remaining images over random classes, at most 12 per class
        idx = rng.integers(0, n_classes, extra)
        np.add.at(sizes, idx, 1)
        over = sizes > 12
        extra = int((sizes[over] - 12).sum())
        sizes[over] = 12
    labels = np.repeat(np.arange(n_classes), sizes)
    rng.shuffle(labels)
    centres = rng.standard_normal((n_classes, d), dtype=np.float32) / np.sqrt(d)
    x = centres[labels] + noise / np.sqrt(d) * rng.standard_normal((n, d), dtype=np.float32)
    return x.astype(np.float32), labels


def _pml_calculator(ks, seed):
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKMeans, FaissKNN

    class RecallCalculator(AccuracyCalculator):
        """PML calculator plus Recall@K for K > 1 (any same-label item among the first K neighbours)."""

        def requires_knn(self):
            return super().requires_knn() + [f"recall_at_{k}" for k in ks if k > 1]

    def make(k):
        def calc(self, knn_labels, query_labels, **kwargs):
            hit = (knn_labels[:, :k] == query_labels[:, None]).any(dim=1)
            return hit.double().mean().item()
        return calc

    for k in ks:
        if k > 1:
            setattr(RecallCalculator, f"calculate_recall_at_{k}", make(k))
    include = ("precision_at_1", "mean_average_precision_at_r", "r_precision", "NMI") + tuple(
        f"recall_at_{k}" for k in ks if k > 1)
    return RecallCalculator(include=include, k=max(ks), device=torch.device("cpu"), knn_func=FaissKNN(),
                            kmeans_func=FaissKMeans(niter=20, seed=seed))


def bench_ml(repeat: int) -> dict:
    from shared.retrieval.metric_learning import SOP_RECALL_KS, evaluate_embeddings

    x, y = sop_embeddings()
    seed = 1234
    pml = _pml_calculator(SOP_RECALL_KS, seed)
    # warm-up
    xs, ys = x[:3000], y[:3000]
    _pml_calculator((1, 10), seed).get_accuracy(xs, ys)
    evaluate_embeddings(xs, ys, recall_ks=(1, 10), compute_f1=False)
    t_ours, t_pml = [], []
    for _ in range(repeat):
        to, ours = _timed(lambda: evaluate_embeddings(x, y, recall_ks=SOP_RECALL_KS, compute_f1=False,
                                                      seed=seed))
        tp, ref = _timed(lambda: pml.get_accuracy(x, y))
        t_ours.append(to)
        t_pml.append(tp)
    agree = {
        "R@1_vs_precision_at_1": abs(ours.recall_at_k[1] - ref["precision_at_1"] * 100),
        "MAP@R": abs(ours.map_at_r - ref["mean_average_precision_at_r"] * 100),
        "RP": abs(ours.r_precision - ref["r_precision"] * 100),
        "NMI": abs(ours.nmi - ref["NMI"] * 100),
        **{f"R@{k}": abs(ours.recall_at_k[k] - ref[f"recall_at_{k}"] * 100) for k in SOP_RECALL_KS if k > 1},
    }
    return {
        "part": "ml", "repeat": repeat, "result": ours.as_dict(), "abs_diff_percent_points": agree,
        "median_s": {"ours": statistics.median(t_ours), "pml": statistics.median(t_pml)},
        "ratio": statistics.median(t_ours) / statistics.median(t_pml), "peak_rss_mb": _peak_rss_mb(),
    }


# ------------------------------------------------------------------------------------------- copy detection
def _unit_rows(rng, n: int, d: int, chunk: int = 100_000) -> np.ndarray:
    """n random unit float32 rows, generated in chunks so that the peak stays near the output's size."""
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), d), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def bench_cd(n_queries=50_000, n_refs=200_000, n_background=100_000, d=256, k=10, n_positive=10_000) -> dict:
    from shared.retrieval.copy_detection import evaluate_copy_detection

    rng = np.random.default_rng(0)
    refs = _unit_rows(rng, n_refs, d)
    queries = rng.standard_normal((n_queries, d), dtype=np.float32)
    queries[:n_positive] = refs[:n_positive] + 0.18 * queries[:n_positive]  # hard edited copies of references
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    background = _unit_rows(rng, n_background, d)
    gt = {q: (q if q < n_positive else None) for q in range(n_queries)}
    rss_before = _peak_rss_mb()
    elapsed, res = _timed(lambda: evaluate_copy_detection(queries, refs, gt, k=k,
                                                          background_descriptors=background))
    return {
        "part": "cd1m" if n_refs >= 1_000_000 else "cd",
        "sizes": {"queries": n_queries, "references": n_refs, "background": n_background, "dim": d, "k": k},
        "result": res.as_dict(), "seconds": elapsed, "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_before_eval_mb": rss_before,
        "input_descriptors_mb": (queries.nbytes + refs.nbytes + background.nbytes) / 2 ** 20,
    }


def _run_part(part: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--part", part, "--repeat", str(args.repeat),
           "--ml-repeat", str(args.ml_repeat), "--reid-noise", str(args.reid_noise), "--threads",
           str(args.threads), "--json"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _report(r: dict) -> None:
    if r["part"] == "reid":
        m = r["median_s"]
        print(f"ReID (Market-1501 size, feature noise {r['noise']}): {r['result']}")
        print(f"  identical to FastReID: {r['identical']}")
        print(f"  ranking+metrics on the same distmat: ours {m['ours_rank']:.2f} s vs FastReID Cython "
              f"evaluate_rank {m['fr_rank']:.2f} s -> ratio {r['ratio_rank']:.2f} "
              f"({verdict(r['ratio_rank'], '<=', 0.5)})")
        print(f"  end to end incl. distances: ours {m['ours_e2e']:.2f} s vs build_dist "
              f"{m['fr_dist']:.2f} s + evaluate_rank = {m['fr_e2e']:.2f} s -> ratio {r['ratio_e2e']:.2f} "
              f"({verdict(r['ratio_e2e'], '<=', 0.75)})")
        print(f"  peak RSS {r['peak_rss_mb']:.0f} MB, median of {r['repeat']}")
    elif r["part"] == "ml":
        m = r["median_s"]
        print(f"Metric learning (SOP size 60,502 x 128, 11,316 classes): {r['result']}")
        print(f"  |ours - PML| in percent points: {r['abs_diff_percent_points']}")
        print(f"  ours {m['ours']:.2f} s vs PML AccuracyCalculator (FaissKNN, FaissKMeans) {m['pml']:.2f} s "
              f"-> ratio {r['ratio']:.2f} ({verdict(r['ratio'], '<=', 1.0)}); "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"median of {r['repeat']}")
    else:
        print(f"Copy detection ({r['part']}) {r['sizes']}: {r['result']}")
        print(f"  end to end {r['seconds']:.1f} s; peak RSS {r['peak_rss_mb']:.0f} MB (inputs "
              f"{r['input_descriptors_mb']:.0f} MB, peak before evaluation "
              f"{r['peak_rss_before_eval_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "reid", "ml", "cd", "cd1m"], default="all")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (ReID part)")
    parser.add_argument("--ml-repeat", type=int, default=1,
                        help="timed runs per side for the SOP part (one run of each side takes minutes: "
                             "k-means with 11,316 clusters)")
    parser.add_argument("--reid-noise", type=float, default=2.8,
                        help="feature noise of the synthetic ReID set (2.8: about a trained Market model, "
                             "mAP ~87; 3.5 and 6.0: weaker models)")
    parser.add_argument("--cd1m-queries", type=int, default=25_000, help="queries of the cd1m part")
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads (every part)")
    parser.add_argument("--json", action="store_true", help="print the raw result dict (used by --part all)")
    args = parser.parse_args()
    pin_threads(args.threads)
    print(f"threads: {args.threads}; {load_line()}", file=sys.stderr if args.json else sys.stdout)
    if args.part == "all":
        for part in ("reid", "ml", "cd"):
            _report(_run_part(part, args))
        return
    if args.part == "reid":
        r = bench_reid(args.repeat, args.reid_noise)
    elif args.part == "ml":
        r = bench_ml(args.ml_repeat)
    elif args.part == "cd1m":
        r = bench_cd(n_queries=args.cd1m_queries, n_refs=1_000_000, n_background=100_000,
                     n_positive=args.cd1m_queries // 5)
    else:
        r = bench_cd()
    print(json.dumps(r)) if args.json else _report(r)


if __name__ == "__main__":
    main()
