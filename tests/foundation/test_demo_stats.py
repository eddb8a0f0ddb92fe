"""shared.engine.demo_stats: the seed-study summary every demo prints, against hand-computed values."""

import io
import math

import pytest

from shared.engine import demo_stats
from shared.engine.demo_stats import (
    RunResult,
    StudyJob,
    StudyProgress,
    curve_statistics,
    mean_sd,
    paired_comparisons,
    plot_curves,
    run_study,
    summary_table,
    t_quantile_975,
)


def _runs(baseline, method, name="AP"):
    runs = [RunResult("IoU", s, {name: v}, curve=[(10, v / 2), (20, v)]) for s, v in enumerate(baseline)]
    runs += [RunResult("SimD", s, {name: v}, curve=[(10, v / 2), (20, v)]) for s, v in enumerate(method)]
    return runs


def test_mean_and_sample_sd_by_hand():
    assert mean_sd([10, 12, 14]) == (12.0, 2.0)  # deviations -2, 0, 2: sqrt(8 / 2) = 2
    mean, sd = mean_sd([13, 14, 18])  # mean 15, deviations -2, -1, 3: sqrt(14 / 2)
    assert mean == 15.0 and sd == pytest.approx(math.sqrt(7.0))
    assert mean_sd([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError, match="AP values contain a non-finite value"):
        mean_sd([1.0, float("nan")], "AP values")
    with pytest.raises(ValueError, match="no AP"):
        mean_sd([], "AP")


def test_t_quantiles_are_the_tabulated_ones_and_conservative_between_entries():
    assert t_quantile_975(2) == 4.3027 and t_quantile_975(4) == 2.7764
    assert t_quantile_975(12) == t_quantile_975(10)  # between entries: the larger (smaller-dof) quantile
    assert t_quantile_975(100) == 1.96
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_a_difference_larger_than_the_noise_is_called_so():
    # differences 3, 2, 4: mean 3, sd 1, bound 4.3027 / sqrt(3) = 2.4842 < 3
    (c,) = paired_comparisons(_runs([10, 12, 14], [13, 14, 18]), ["AP"], "SimD", "IoU")
    assert c.differences == [3.0, 2.0, 4.0]
    assert c.noise_bound == pytest.approx(4.3027 / math.sqrt(3.0))
    assert c.significant is True
    assert c.verdict().startswith("AP: SimD is ahead by 3.00, larger than the seed noise")
    assert "+0.52 … +5.48" in c.verdict()


def test_a_difference_within_the_noise_is_called_so():
    # differences 3, -1, 1: mean 1, sd 2, bound 4.3027 * 2 / sqrt(3) = 4.968 > 1
    (c,) = paired_comparisons(_runs([10, 12, 14], [13, 11, 15]), ["AP"], "SimD", "IoU")
    assert c.significant is False
    assert "within the seed noise" in c.verdict() and "-3.97 … +5.97" in c.verdict()


def test_baseline_ahead_and_single_seed():
    (c,) = paired_comparisons(_runs([10, 12, 14], [7, 10, 11]), ["AP"], "SimD", "IoU")  # d = -3, -2, -3
    assert c.significant and c.verdict().startswith("AP: IoU is ahead by 2.67")
    (one,) = paired_comparisons(_runs([10], [12]), ["AP"], "SimD", "IoU")
    assert one.significant is None and "cannot be estimated" in one.verdict()


def test_summary_table_rows_by_hand():
    table = summary_table(_runs([10, 12, 14], [13, 14, 18]), ["AP"], "SimD", "IoU")
    row = [line for line in table.splitlines() if line.startswith("AP ")][0]
    assert row.split() == ["AP", "12.00", "±", "2.00", "15.00", "±", "2.65", "3.00", "±", "1.00"]
    assert "seeds [0, 1, 2]" in table and "Rule:" in table


def test_unpaired_or_missing_metric_is_an_error_naming_it():
    runs = _runs([10, 12], [13])
    with pytest.raises(ValueError, match=r"unpaired runs: no result for \[\('SimD', 1\)\]"):
        paired_comparisons(runs, ["AP"], "SimD", "IoU")
    with pytest.raises(KeyError, match="metric 'AP50' missing from the SimD run with seed 0"):
        paired_comparisons(_runs([1], [2]), ["AP50"], "SimD", "IoU")


def test_curves_mean_sd_and_png(tmp_path):
    runs = _runs([10, 12, 14], [13, 14, 18])
    grid, means, sds = curve_statistics(runs, "IoU")
    assert grid == [10, 20] and means == [6.0, 12.0] and sds == [1.0, 2.0]
    path = plot_curves(runs, ["IoU", "SimD"], str(tmp_path / "curve.png"), "title", "AP")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    runs[0].curve = [(5, 1.0), (20, 2.0)]
    with pytest.raises(ValueError, match="curves need the same iterations"):
        curve_statistics(runs, "IoU")


def test_progress_eta_over_all_runs():
    now = [100.0]
    out = io.StringIO()
    jobs = [StudyJob("IoU", 0, 100), StudyJob("SimD", 0, 300)]
    progress = StudyProgress(jobs, interval=0.0, stream=out, clock=lambda: now[0])
    assert math.isinf(progress.eta_seconds())
    now[0] = 150.0
    progress.update(0, 50)  # 50 of 400 steps in 50 s: 350 steps left at 1 step/s
    assert progress.eta_seconds() == pytest.approx(350.0)
    assert "[ 12.5% 50/400 steps, 0/2 runs] IoU seed 0 at 50/100" in out.getvalue()
    assert "ETA 350s" in out.getvalue()


def _toy_worker(job, report):
    for step in range(1, job.steps + 1):
        report(step)
    return RunResult(job.method, job.seed, {"AP": float(job.seed + job.kwargs["offset"])})


def test_run_study_in_process_returns_results_in_job_order(capsys):
    jobs = [StudyJob(m, s, 4, {"offset": o}) for s in (0, 1) for m, o in (("IoU", 0), ("SimD", 10))]
    results = run_study(jobs, _toy_worker, processes=1, interval=0.0)
    assert [(r.method, r.seed, r.metrics["AP"]) for r in results] == [
        ("IoU", 0, 0.0), ("SimD", 0, 10.0), ("IoU", 1, 1.0), ("SimD", 1, 11.0)]
    assert "[100.0% 16/16 steps, 4/4 runs]" in capsys.readouterr().out


@pytest.mark.slow  # spawns a manager and two interpreters: ~40 s on the loaded 2 cores
def test_run_study_in_two_processes(capsys):
    jobs = [StudyJob(m, s, 3, {"offset": o}) for s in (0, 1) for m, o in (("IoU", 0), ("SimD", 10))]
    results = run_study(jobs, _toy_worker, processes=2, interval=0.0)
    assert [r.metrics["AP"] for r in results] == [0.0, 10.0, 1.0, 11.0]
    assert "12/12 steps, 4/4 runs" in capsys.readouterr().out


def test_study_arguments_defaults_quick_and_overrides(monkeypatch):
    monkeypatch.delenv("DEMO_QUICK", raising=False)
    parser = demo_stats.study_argument_parser("doc", output_dir="./out", seeds=5, base_seed=1, iters=600,
                                              eval_period=50, quick_help="pipeline only")
    args = demo_stats.parse_study_args(parser, ["--seeds", "3", "SOLVER.BASE_LR", "0.1"])
    assert (args.output_dir, args.seeds, args.base_seed, args.iters, args.eval_period, args.processes,
            args.quick, args.opts) == ("./out", 3, 1, 600, 50, 2, False, ["SOLVER.BASE_LR", "0.1"])
    # --quick shrinks seeds (never grows them), iterations and the evaluation period
    quick = demo_stats.parse_study_args(parser, ["--quick"], quick=(2, 10, 5))
    assert (quick.seeds, quick.iters, quick.eval_period) == (2, 10, 5)
    one_seed = demo_stats.parse_study_args(parser, ["--quick", "--seeds", "1"])
    assert (one_seed.seeds, one_seed.iters, one_seed.eval_period) == (1, 20, 10)
    # DEMO_QUICK=1 is read when the parser is built (make demo DEMO_QUICK=1)
    monkeypatch.setenv("DEMO_QUICK", "1")
    parser = demo_stats.study_argument_parser("doc", output_dir="./out", seeds=5, base_seed=1, iters=600,
                                              eval_period=50, quick_help="pipeline only")
    assert demo_stats.parse_study_args(parser, []).iters == 20


def test_study_arguments_refuse_no_seeds_and_keep_unset_quick_values(monkeypatch, capsys):
    monkeypatch.delenv("DEMO_QUICK", raising=False)
    parser = demo_stats.study_argument_parser("doc", output_dir="./out", seeds=3, base_seed=1, iters=272,
                                              eval_period=68, quick_help="pipeline only")
    with pytest.raises(SystemExit):
        demo_stats.parse_study_args(parser, ["--seeds", "0"])
    assert "--seeds must be >= 1, got 0" in capsys.readouterr().err
    kept = demo_stats.parse_study_args(parser, ["--quick"], quick=(2, None, None))
    assert (kept.seeds, kept.iters, kept.eval_period) == (2, 272, 68)


def test_finish_study_prints_writes_and_counts_cpu_once(tmp_path, capsys):
    import json
    import time

    runs = [RunResult("IoU", 1, {"AP": 1.0}, extra={"cpu_seconds": 100.0}),
            RunResult("SimD", 1, {"AP": 2.0}, extra={"cpu_seconds": 50.0})]
    wall0, cpu0 = time.time() - 30.0, time.process_time()
    text = demo_stats.finish_study(["table"], runs, str(tmp_path / "out"), ["a.png"], wall0, cpu0,
                                   processes=2)
    lines = text.splitlines()
    assert lines[:2] == ["table", "learning curve: a.png"]
    # spawned runs: their 150 s are added to this process's (~0 s) own CPU time
    assert lines[2].startswith("total wall time 30s; CPU time 150s (150s in the 2 training runs")
    assert capsys.readouterr().out.strip().endswith(lines[2])
    assert (tmp_path / "out" / "demo_table.txt").read_text() == text + "\n"
    written = json.loads((tmp_path / "out" / "demo_results.json").read_text())
    assert [r["method"] for r in written] == ["IoU", "SimD"]
    # in-process runs (processes 1): the 150 s this process spent include the runs' 150 s, counted once
    text = demo_stats.finish_study([], runs, str(tmp_path / "one"), ["a.png", "b.png"], wall0,
                                   time.process_time() - 150.0, processes=1)
    assert text.splitlines()[0] == "learning curves: a.png, b.png" and "CPU time 150s (150s" in text


def test_evaluation_recorder_records_each_evaluation_once_and_reports_every_n():
    from types import SimpleNamespace

    from shared.engine.demo_stats import evaluation_recorder

    seen, reported = [], []
    hook = evaluation_recorder(lambda step, results: seen.append((step, results["AP"])), reported.append,
                               every=3)
    hook.trainer = SimpleNamespace(iter=0)  # no evaluation yet: no attribute at all
    first, second = {"AP": 1.0}, {"AP": 2.0}
    evaluations = {1: first, 4: second}  # trainer.iter (0-based) -> the evaluation that step ran
    for it in range(7):
        hook.trainer.iter = it
        if it in evaluations:
            hook.trainer._last_eval_results = evaluations[it]
        hook.after_step()
    # iterations count from 1; the same results object is kept between evaluations and recorded once
    assert seen == [(2, 1.0), (5, 2.0)]
    assert reported == [3, 6]
