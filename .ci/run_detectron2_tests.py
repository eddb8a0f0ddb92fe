"""Run detectron2 v0.6's own test suite on this stack, the way our README tells users to use detectron2.

    python .ci/run_detectron2_tests.py /path/to/detectron2 [--keep coco] [-- pytest arguments / test paths]
    make detectron2-tests D2=/path/to/detectron2

``/path/to/detectron2`` is a checkout (or an unpacked source archive) of detectron2 v0.6 -- only its
``tests/`` folder is used; the installed detectron2 is what gets tested. ``shared`` is imported first (it
applies ``shared.compat``), then pytest runs ``tests/`` inside the checkout with the tests listed in
``.ci/detectron2_test_exclusions.txt`` deselected; each line there gives the category and the reason.
``--keep CATEGORY`` (repeatable) runs a category anyway, e.g. ``--keep coco`` with COCO under
DETECTRON2_DATASETS. Exit status: pytest's.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import shared  # noqa: F401  (shared.compat before detectron2 is imported, as in every project script)
import shared.evaluation  # noqa: F401  (detectron2's COCOeval_opt on faster-coco-eval, as projects use it)

EXCLUSIONS = Path(__file__).resolve().with_name("detectron2_test_exclusions.txt")


def read_exclusions(path: Path = EXCLUSIONS) -> list[tuple[str, str, str]]:
    """``(node id, category, reason)`` per non-comment line of the exclusion list."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        node, sep, note = line.partition("#")
        category, colon, reason = note.partition(":")
        if not sep or not colon or not category.strip():
            raise ValueError(f"{path}:{number}: expected '<node id>  # <category>: <reason>', got {line!r}")
        out.append((node.strip(), category.strip(), reason.strip()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("detectron2", type=Path, help="detectron2 v0.6 checkout (its tests/ folder is run)")
    parser.add_argument("--keep", action="append", default=[], metavar="CATEGORY",
                        help="run the excluded tests of this category anyway")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.pytest_args = extra  # everything after --

    root = args.detectron2.resolve()
    if not (root / "tests" / "test_engine.py").is_file():
        parser.error(f"{root} is not a detectron2 checkout: {root / 'tests' / 'test_engine.py'} not found")
    exclusions = read_exclusions()
    unknown = sorted(set(args.keep) - {c for _, c, _ in exclusions})
    if unknown:
        parser.error(f"--keep {unknown}: not a category of {EXCLUSIONS.name} "
                     f"({sorted({c for _, c, _ in exclusions})})")
    missing = [n for n, _, _ in exclusions if not (root / n.split("::")[0]).is_file()]
    if missing:
        parser.error(f"{len(missing)} excluded test files are not in {root} (not detectron2 v0.6?): "
                     f"{missing[:3]}")
    deselect = [n for n, c, _ in exclusions if c not in args.keep]
    counts: dict[str, int] = {}
    for _, c, _ in exclusions:
        if c not in args.keep:
            counts[c] = counts.get(c, 0) + 1
    print(f"[detectron2-tests] {root}: {len(deselect)} tests excluded "
          f"({', '.join(f'{c} {k}' for c, k in sorted(counts.items()))}); reasons in {EXCLUSIONS.name}")

    import pytest

    # -c devnull: no ini file from the directories above the checkout (e.g. this repository's setup.cfg)
    pytest_args = ["-c", os.devnull, "-p", "no:cacheprovider", "--rootdir", str(root), "-q", "-rfE"]
    if not any(a.startswith("tests") for a in args.pytest_args):  # else: the given test paths only
        pytest_args.append("tests")
    pytest_args += [a for n in deselect for a in ("--deselect", n)]
    if "timeout" not in " ".join(args.pytest_args):
        pytest_args += ["--timeout", "900"]
    os.chdir(root)  # detectron2's tests open paths relative to the checkout (and ./datasets by default)
    return int(pytest.main(pytest_args + list(args.pytest_args)))


if __name__ == "__main__":
    sys.exit(main())
