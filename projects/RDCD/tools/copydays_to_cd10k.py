#!/usr/bin/env python
"""Write CD10K (Copydays + distractors) in the layout the ``cd10k`` dataset reads, with unique file names.

    python projects/RDCD/tools/copydays_to_cd10k.py --copydays /path/to/copydays --distractors /path/to/10k \\
        [--background /path/to/train_images] --out $DETECTRON2_DATASETS/CD10K [--copy]

Copydays, as SSCD reads it (``sscd/datasets/copydays.py``), has the blocks ``original``, ``strong``,
``jpegqual/{3,5,8,10,15,20,30,50,75}`` and ``crops/{10,15,20,30,40,50,60,70,80}``; the same file name occurs
in
many blocks, so flattening them collides. Written here:

* ``references/``: every original (its own name) and every distractor (``distractor_<name>``);
* ``queries/``: every image of every block, as SSCD queries all 20 blocks, named ``<block>_<name>`` with ``/``
  in the block replaced by ``_`` (``jpegqual_3_200000.jpg``, ``crops_10_200000.jpg``, ``strong_200001.jpg``);
* ``background/``: ``--background`` images (for score normalisation / PCA-whitening), else the distractors;
* ``ground_truth.csv``: ``query_id,reference_id``, one row per pair: an edited copy's original is the original
  with the same name; a "strong" query matches every original whose name shares its first 4 characters
  (SSCD's rule), so it may have several rows.

Files are symlinked (``--copy`` copies them).
"""

import argparse
import csv
import os
import shutil
from typing import Dict, List, Tuple

BLOCKS = (
    ["original", "strong"]
    + [f"jpegqual/{q}" for q in (3, 5, 8, 10, 15, 20, 30, 50, 75)]
    + [f"crops/{c}" for c in (10, 15, 20, 30, 40, 50, 60, 70, 80)]
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _images(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"missing folder {folder!r}")
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))


def _place(src: str, dst: str, copy: bool) -> None:
    if os.path.lexists(dst):
        raise FileExistsError(f"{dst!r} exists already: two inputs would get the same name")
    if copy:
        shutil.copyfile(src, dst)
    else:
        os.symlink(os.path.abspath(src), dst)


def convert(
    copydays: str, distractors: str, out: str, background: str = "", copy: bool = False
) -> List[Tuple[str, str]]:
    """Write the CD10K layout under ``out``; returns the ground-truth rows."""
    for part in ("references", "queries", "background"):
        os.makedirs(os.path.join(out, part), exist_ok=True)
    originals = _images(os.path.join(copydays, "original"))
    stems: Dict[str, str] = {name: os.path.splitext(name)[0] for name in originals}
    for name in originals:
        _place(os.path.join(copydays, "original", name), os.path.join(out, "references", name), copy)
    for name in _images(distractors):
        _place(os.path.join(distractors, name), os.path.join(out, "references", f"distractor_{name}"), copy)
    bg_folder = background or distractors
    for name in _images(bg_folder):
        _place(os.path.join(bg_folder, name), os.path.join(out, "background", name), copy)
    rows: List[Tuple[str, str]] = []
    for block in BLOCKS:
        tag = block.replace("/", "_")
        for name in _images(os.path.join(copydays, block)):
            query = f"{tag}_{name}"
            _place(os.path.join(copydays, block, name), os.path.join(out, "queries", query), copy)
            query_id = os.path.splitext(query)[0]
            if block == "strong":
                matches = [stems[o] for o in originals if o[:4] == name[:4]]
            else:
                matches = [stems[name]] if name in stems else []
            rows += [(query_id, m) for m in matches] or [(query_id, "")]
    with open(os.path.join(out, "ground_truth.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query_id", "reference_id"])
        writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copydays", required=True)
    parser.add_argument("--distractors", required=True)
    parser.add_argument("--background", default="")
    parser.add_argument("--out", required=True)
    parser.add_argument("--copy", action="store_true", help="copy the files instead of symlinking them")
    args = parser.parse_args()
    rows = convert(args.copydays, args.distractors, args.out, args.background, args.copy)
    print(f"wrote {args.out}: {len({q for q, _ in rows})} queries, {len(rows)} ground-truth rows")


if __name__ == "__main__":
    main()
