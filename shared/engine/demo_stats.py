"""Seed studies for the demos: a method and its baseline trained on the same seeds, summarised so that a
difference is only called a difference when it is larger than the seed-to-seed noise.

Every demo (``projects/<X>/demo.py``) describes its runs as :class:`StudyJob` s, hands a worker function to
:func:`run_study` (runs in parallel processes, one progress line with the ETA over *all* runs), and prints
:func:`summary_table`, which gives per metric

* mean ± sample standard deviation over the seeds of each method,
* the paired difference d_s = method_s − baseline_s (same seed s): mean ± standard deviation,
* one verdict: the difference is larger than the seed noise when the 95 % confidence interval of the mean
  paired difference excludes 0, i.e. ``|mean(d)| > t(0.975, k−1) · sd(d) / sqrt(k)`` over k seeds (the paired
  t-test at 5 %; t = 4.30 for 3 seeds, 2.78 for 5), otherwise it is within the noise.

:func:`plot_curves` draws the learning curve (mean ± one standard deviation over the seeds, both methods).
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import os
import queue
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

# Two-sided 95 % quantiles t(0.975, dof) of Student's t distribution (scipy.stats.t.ppf(0.975, dof)).
_T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060, 9: 2.2622,
         10: 2.2281, 15: 2.1314, 20: 2.0860, 30: 2.0423}


@dataclass
class StudyJob:
    """One training run of a study: ``method`` on ``seed``, ``steps`` iterations (for the ETA) and the
    keyword arguments the worker needs."""

    method: str
    seed: int
    steps: int
    kwargs: Dict[str, object] = field(default_factory=dict)


@dataclass
class RunResult:
    """What one run returns: final ``metrics`` (name → value), the learning ``curve`` [(iteration, value)]
    of the study's curve metric, wall ``seconds``, and anything else in ``extra``."""

    method: str
    seed: int
    metrics: Dict[str, float]
    curve: List[Tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    extra: Dict[str, object] = field(default_factory=dict)


def t_quantile_975(dof: int) -> float:
    """t(0.975, dof), the two-sided 95 % quantile; tabulated values, and for dof between table entries the
    next smaller tabulated dof (a larger, i.e. conservative, quantile); 1.96 beyond 30."""
    if dof < 1:
        raise ValueError(f"t quantile needs at least 1 degree of freedom, got {dof}")
    if dof > 30:
        return 1.96
    return _T975[max(k for k in _T975 if k <= dof)]


def mean_sd(values: Sequence[float], what: str = "values") -> Tuple[float, float]:
    """(mean, sample standard deviation with k − 1 in the denominator); sd is 0 for a single value.
    NaN / inf values are refused, naming ``what``."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError(f"no {what} to summarise")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what} contain a non-finite value ({bad[0]}): {values}")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


@dataclass
class PairedComparison:
    """One metric of a study: per-method mean and sd, the paired differences and the verdict."""

    metric: str
    method: str
    baseline: str
    method_values: List[float]
    baseline_values: List[float]

    @property
    def differences(self) -> List[float]:
        return [m - b for m, b in zip(self.method_values, self.baseline_values)]

    @property
    def noise_bound(self) -> float:
        """t(0.975, k−1) · sd(d) / sqrt(k): a mean paired difference within ± this is seed noise
        (NaN for a single seed, where the noise cannot be estimated)."""
        k = len(self.differences)
        if k < 2:
            return float("nan")
        _, sd = mean_sd(self.differences, f"{self.metric} differences")
        return t_quantile_975(k - 1) * sd / math.sqrt(k)

    @property
    def significant(self) -> Optional[bool]:
        """True when |mean(d)| exceeds :attr:`noise_bound`; None with a single seed."""
        if len(self.differences) < 2:
            return None
        mean, _ = mean_sd(self.differences, f"{self.metric} differences")
        return abs(mean) > self.noise_bound

    def verdict(self) -> str:
        """One sentence: who is ahead on this metric and whether that is larger than the seed noise."""
        k = len(self.differences)
        mean, sd = mean_sd(self.differences, f"{self.metric} differences")
        if k < 2:
            return (f"{self.metric}: one seed only, the seed noise cannot be estimated "
                    f"({self.method} − {self.baseline} = {mean:+.2f}).")
        ahead = self.method if mean > 0 else self.baseline
        bound = self.noise_bound
        if self.significant:
            return (f"{self.metric}: {ahead} is ahead by {abs(mean):.2f}, larger than the seed noise "
                    f"(95 % interval of the paired difference {mean - bound:+.2f} … {mean + bound:+.2f} "
                    f"excludes 0, {k} seeds).")
        return (f"{self.metric}: the difference {mean:+.2f} ({self.method} − {self.baseline}) is within the "
                f"seed noise (95 % interval {mean - bound:+.2f} … {mean + bound:+.2f} includes 0, {k} "
                f"seeds); this demo cannot rank the two on it.")


def paired_comparisons(
    results: Sequence[RunResult], metrics: Sequence[str], method: str, baseline: str
) -> List[PairedComparison]:
    """Pair ``method`` and ``baseline`` runs by seed (every seed must have both) for each metric."""
    by_key = {(r.method, r.seed): r for r in results}
    seeds = sorted({r.seed for r in results if r.method in (method, baseline)})
    missing = [(name, s) for s in seeds for name in (method, baseline) if (name, s) not in by_key]
    if missing:
        raise ValueError(f"unpaired runs: no result for {missing} (each seed needs both methods)")
    comparisons = []
    for metric in metrics:
        values = {}
        for name in (method, baseline):
            values[name] = []
            for s in seeds:
                run_metrics = by_key[(name, s)].metrics
                if metric not in run_metrics:
                    raise KeyError(f"metric {metric!r} missing from the {name} run with seed {s}; "
                                   f"it has {sorted(run_metrics)}")
                values[name].append(float(run_metrics[metric]))
        comparisons.append(PairedComparison(metric, method, baseline, values[method], values[baseline]))
    return comparisons


def summary_table(
    results: Sequence[RunResult], metrics: Sequence[str], method: str, baseline: str
) -> str:
    """The printed study summary: a table of mean ± sd per method and of the paired difference, the seeds,
    then one verdict sentence per metric and the rule used."""
    comparisons = paired_comparisons(results, metrics, method, baseline)
    seeds = sorted({r.seed for r in results if r.method in (method, baseline)})
    width = max(16, len(method) + 4, len(baseline) + 4, len(f"{method} − {baseline}") + 2)
    header = f"{'metric':<10}" + f"{baseline:>{width}}" + f"{method:>{width}}" + f"{'paired diff':>{width}}"
    lines = [header, "-" * len(header)]
    for c in comparisons:
        cells = []
        for values in (c.baseline_values, c.method_values, c.differences):
            mean, sd = mean_sd(values, f"{c.metric} values")
            cells.append(f"{mean:.2f} ± {sd:.2f}")
        lines.append(f"{c.metric:<10}" + "".join(f"{cell:>{width}}" for cell in cells))
    lines.append(f"(mean ± sample standard deviation over seeds {seeds}; paired diff = {method} − {baseline} "
                 "on the same seed)")
    lines += [c.verdict() for c in comparisons]
    lines.append("Rule: a difference is larger than the seed noise when |mean paired difference| > "
                 "t(0.975, k−1) · sd / sqrt(k) (k seeds; the 95 % interval excludes 0).")
    return "\n".join(lines)


def curve_statistics(
    results: Sequence[RunResult], method: str
) -> Tuple[List[int], List[float], List[float]]:
    """(iterations, mean, sd) of ``method``'s learning curves over its seeds; every run must have been
    evaluated at the same iterations."""
    runs = [r for r in results if r.method == method]
    if not runs:
        raise ValueError(f"no runs of {method!r}")
    grid = [it for it, _ in runs[0].curve]
    for r in runs:
        if [it for it, _ in r.curve] != grid:
            raise ValueError(f"{method} seed {r.seed} was evaluated at {[it for it, _ in r.curve]}, "
                             f"seed {runs[0].seed} at {grid}: curves need the same iterations")
    means, sds = [], []
    for i, it in enumerate(grid):
        mean, sd = mean_sd([r.curve[i][1] for r in runs], f"{method} curve values at iteration {it}")
        means.append(mean)
        sds.append(sd)
    return grid, means, sds


def plot_curves(
    results: Sequence[RunResult],
    methods: Sequence[str],
    path: str,
    title: str,
    ylabel: str,
    xlabel: str = "training iteration",
) -> str:
    """Learning-curve PNG: per method the mean over seeds (line) ± one standard deviation (band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for method in methods:
        grid, means, sds = curve_statistics(results, method)
        k = sum(1 for r in results if r.method == method)
        line = ax.plot(grid, means, marker="o", markersize=3, label=f"{method} (mean ± sd, {k} seeds)")[0]
        ax.fill_between(grid, [m - s for m, s in zip(means, sds)], [m + s for m, s in zip(means, sds)],
                        color=line.get_color(), alpha=0.2)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class StudyProgress:
    """Progress over all runs of a study: ``update(job, steps_done)`` records a run's position and prints
    ``[done/total steps] … ETA`` at most every ``interval`` seconds (and when a run finishes). The ETA is
    the remaining steps at the average speed so far (parallel runs included)."""

    def __init__(self, jobs: Sequence[StudyJob], interval: float = 20.0, stream: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.time):
        self.totals = [job.steps for job in jobs]
        self.labels = [f"{job.method} seed {job.seed}" for job in jobs]
        self.done = [0] * len(jobs)
        self.interval = interval
        self.stream = stream if stream is not None else sys.stdout
        self.clock = clock
        self.start = clock()
        self.last_print = -math.inf

    def eta_seconds(self) -> float:
        """Remaining steps / (steps done / elapsed); inf before the first step."""
        done, total = sum(self.done), sum(self.totals)
        elapsed = self.clock() - self.start
        if done == 0:
            return math.inf
        return elapsed / done * (total - done)

    def line(self, index: int) -> str:
        done, total = sum(self.done), sum(self.totals)
        runs_done = sum(d >= t for d, t in zip(self.done, self.totals))
        eta = self.eta_seconds()
        eta_text = "?" if math.isinf(eta) else f"{eta:.0f}s"
        share = 100.0 * done / max(total, 1)
        return (f"[{share:5.1f}% {done}/{total} steps, {runs_done}/{len(self.totals)} runs] "
                f"{self.labels[index]} at {self.done[index]}/{self.totals[index]}  "
                f"elapsed {self.clock() - self.start:.0f}s  ETA {eta_text}")

    def update(self, index: int, steps_done: int) -> None:
        self.done[index] = min(max(int(steps_done), self.done[index]), self.totals[index])
        now = self.clock()
        if now - self.last_print >= self.interval or self.done[index] == self.totals[index]:
            self.last_print = now
            print(self.line(index), file=self.stream, flush=True)


def _run_job(payload):
    worker, index, job, messages = payload

    def report(steps_done: int) -> None:
        messages.put((index, steps_done))

    result = worker(job, report)
    messages.put((index, job.steps))
    return result


def run_study(
    jobs: Sequence[StudyJob],
    worker: Callable[[StudyJob, Callable[[int], None]], RunResult],
    processes: int = 2,
    interval: float = 20.0,
) -> List[RunResult]:
    """Run ``worker(job, report)`` for every job, ``processes`` at a time (spawned processes; 1 = in this
    process), printing the study's progress; ``report(steps_done)`` is how a run tells its position.
    Returns the results in the order of ``jobs``."""
    progress = StudyProgress(jobs, interval=interval)
    print(f"{len(jobs)} runs, {sum(j.steps for j in jobs)} training steps in all, {processes} at a time",
          flush=True)
    if processes <= 1:
        results = []
        for index, job in enumerate(jobs):
            results.append(worker(job, lambda steps, i=index: progress.update(i, steps)))
            progress.update(index, job.steps)
        return results
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(processes) as pool:
        messages = manager.Queue()
        pending = pool.map_async(_run_job, [(worker, i, job, messages) for i, job in enumerate(jobs)],
                                 chunksize=1)
        while True:
            try:
                index, steps = messages.get(timeout=1.0)
                progress.update(index, steps)
            except queue.Empty:
                if pending.ready():
                    break
        while not messages.empty():
            progress.update(*messages.get())
        return pending.get()


def study_argument_parser(description: str, *, output_dir: str, seeds: int, base_seed: int, iters: int,
                          eval_period: int, quick_help: str, runs: str = "both methods"
                          ) -> argparse.ArgumentParser:
    """The arguments every demo's seed study takes (its own defaults): ``--output-dir``, ``--seeds``,
    ``--base-seed``, ``--iters``, ``--eval-period``, ``--processes``, ``--quick`` (default from
    ``DEMO_QUICK=1``) and trailing ``KEY VALUE`` config overrides. A demo may add its own before
    :func:`parse_study_args`."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=output_dir)
    parser.add_argument("--seeds", type=int, default=seeds, help=f"number of seeds ({runs} run on each)")
    parser.add_argument("--base-seed", type=int, default=base_seed,
                        help="the seeds: base-seed, base-seed + 1, ...")
    parser.add_argument("--iters", type=int, default=iters, help="training iterations of every run")
    parser.add_argument("--eval-period", type=int, default=eval_period,
                        help="evaluate every N iterations (the learning curve)")
    parser.add_argument("--processes", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("DEMO_QUICK", "") == "1",
                        help=quick_help)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="trailing KEY VALUE config overrides")
    return parser


def parse_study_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                     quick: Tuple[int, Optional[int], Optional[int]] = (2, 20, 10)) -> argparse.Namespace:
    """Parse (``--seeds`` below 1 is refused); with ``--quick`` the study shrinks to ``quick`` = (at most
    this many seeds, iterations, evaluation period; None keeps the value): the pipeline end to end, numbers
    that mean nothing."""
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.quick:
        args.seeds = min(args.seeds, quick[0])
        args.iters = args.iters if quick[1] is None else quick[1]
        args.eval_period = args.eval_period if quick[2] is None else quick[2]
    return args


def log_to_file_only(output_dir: str, names: Sequence[str]) -> None:
    """Send the loggers ``names`` (detectron2-style, through ``detectron2.utils.logger.setup_logger``) to
    ``output_dir/log.txt`` and keep only warnings on the console, which shows the study's progress line."""
    from detectron2.utils.logger import setup_logger

    for name in names:
        setup_logger(output=os.path.join(output_dir, "log.txt"), name=name, abbrev_name="d2")
        for handler in logging.getLogger(name).handlers:
            if type(handler).__name__ == "StreamHandler":
                handler.setLevel("WARNING")


def evaluation_recorder(on_eval: Callable[[int, dict], None], report: Callable[[int], None], every: int = 10):
    """A detectron2 hook for a demo's training run, registered after the trainer's ``EvalHook``: after each
    step, ``on_eval(iteration, results)`` once for every new evaluation (the trainer's
    ``_last_eval_results``, set by the evaluation of that step), and ``report(iteration)`` every ``every``
    iterations (the study's progress line). ``iteration`` counts from 1."""
    from detectron2.engine import HookBase

    class EvaluationRecorder(HookBase):
        seen = None

        def after_step(self):
            step = self.trainer.iter + 1
            results = getattr(self.trainer, "_last_eval_results", None)
            if results is not None and results is not self.seen:
                self.seen = results
                on_eval(step, results)
            if step % every == 0:
                report(step)

    return EvaluationRecorder()


def finish_study(lines: List[str], results: Sequence[RunResult], output_dir: str, pngs: Sequence[str],
                 wall0: float, cpu0: float, processes: int) -> str:
    """Close a demo's printout: the learning-curve path(s) and the time line (wall time since ``wall0``; CPU
    time = the runs' ``extra["cpu_seconds"]`` + this process's own since ``cpu0``, which with
    ``processes <= 1`` already holds the runs'), then print it and write ``demo_table.txt`` and
    ``demo_results.json`` (every run) to ``output_dir``. Returns the text."""
    import json

    run_cpu = sum(float(r.extra.get("cpu_seconds", 0.0)) for r in results)
    own_cpu = time.process_time() - cpu0 - (run_cpu if processes <= 1 else 0.0)
    label = "learning curve" if len(pngs) == 1 else "learning curves"
    lines = list(lines) + [
        f"{label}: {', '.join(pngs)}",
        f"total wall time {time.time() - wall0:.0f}s; CPU time {run_cpu + own_cpu:.0f}s "
        f"({run_cpu:.0f}s in the {len(results)} training runs, one thread each)",
    ]
    text = "\n".join(lines)
    print()
    print(text, flush=True)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "demo_table.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(output_dir, "demo_results.json"), "w") as f:
        json.dump([r.__dict__ for r in results], f, indent=2)
    return text
