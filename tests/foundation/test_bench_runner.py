"""`make bench` (benchmarks/run_all.py): every benchmark prints its target in one form, the runner finds every
verdict, counts the misses and exits 1 on a miss or a crashed benchmark; the commands it runs are the ones
docs/results.md shows."""

import os
import re

import pytest

from shared.engine.provenance import load_module_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(ROOT, "benchmarks")


@pytest.fixture(scope="module")
def common():
    return load_module_file(os.path.join(BENCH, "_common.py"), "bench_common")


@pytest.fixture
def runner():
    return load_module_file(os.path.join(BENCH, "run_all.py"), "bench_run_all")


def test_verdict_form(common):
    assert common.verdict(0.5, "<=", 0.5) == "target <= 0.5: PASS"
    assert common.verdict(0.51, "<=", 0.5) == "target <= 0.5: FAIL"
    assert common.verdict(246.8, ">=", 20) == "target >= 20: PASS"
    assert common.verdict(19.9, ">=", 20) == "target >= 20: FAIL"
    with pytest.raises(ValueError, match="'<=' or '>='"):
        common.verdict(1.0, "<", 2.0)


def test_paired_ratio_interval(common):
    # constant pairs: every resample gives the same ratio of medians
    assert common.paired_ratio_interval([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]) == (2.0, 2.0)
    # two rounds: a resample is round 1 twice (3/1), round 2 twice (4/2) or one of each (3.5/1.5 = 7/3)
    low, high = common.paired_ratio_interval([3.0, 4.0], [1.0, 2.0], rounds=4000)
    assert low == pytest.approx(2.0) and high == pytest.approx(3.0)
    # the pairs stay together: a ratio that is 1 in every round has a zero-width interval however the
    # timings themselves vary (load hitting both sides of a round alike)
    assert common.paired_ratio_interval([1.0, 5.0, 9.0], [1.0, 5.0, 9.0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="paired timings"):
        common.paired_ratio_interval([1.0, 2.0], [1.0])


def test_runner_counts_misses_and_crashes(runner, tmp_path, monkeypatch, capsys):
    scripts = {
        "ok.py": "print('ratio 0.3 (target <= 0.5: PASS), more text')",
        "miss.py": "print('lvis ratio 0.103 wall (target <= 0.1: FAIL), max |metric diff| 2.78e-17')",
        "crash.py": "raise SystemExit(3)",
    }
    for name, body in scripts.items():
        (tmp_path / name).write_text(body + "\n")
    monkeypatch.setattr(runner, "HERE", str(tmp_path))
    assert runner.run([("ok.py", ())], None) == 0
    assert "every target met" in capsys.readouterr().out
    assert runner.run([(name, ()) for name in scripts], None) == 1
    out = capsys.readouterr().out
    # the miss in the middle of a line counts, and so does the crash
    assert "2 target(s) missed" in out and "exit status 3: FAIL" in out


def test_commands_are_the_documented_ones(runner):
    with open(os.path.join(ROOT, "docs", "results.md")) as f:
        documented = f.read()
    for script, arguments in runner.COMMANDS:
        assert os.path.exists(os.path.join(BENCH, script)), script
        shown = " ".join(["benchmarks/" + script, *arguments])
        assert shown in documented, f"docs/results.md does not show `{shown}`"
    # and every benchmark that states a target prints it through the shared verdict form
    for name in sorted(os.listdir(BENCH)):
        if name.startswith("bench_"):
            with open(os.path.join(BENCH, name)) as f:
                text = f.read()
            assert not re.search(r"\(target [<>]=[^:]*\)", text), f"{name} prints a target without a verdict"
