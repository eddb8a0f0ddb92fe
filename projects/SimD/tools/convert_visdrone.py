#!/usr/bin/env python
"""Convert one split of VisDrone2019-DET from its release form (``images/*.jpg`` + one ``annotations/*.txt``
per image) into the COCO json the SimD registrations read.

    python projects/SimD/tools/convert_visdrone.py VisDrone2019-DET-train \\
        datasets/visdrone/train/annotations/result.json
    # images: link or copy VisDrone2019-DET-train/images to datasets/visdrone/train/images

Each txt line is ``x,y,w,h,score,category,truncation,occlusion`` (VisDrone toolkit). Categories 1-10 become
the
10 classes (ids 1-10, names as in the official SimD repository's VisDrone class list); category 0 ("ignored
regions") becomes an ``iscrowd`` annotation of category 0 "ignored regions" (the SimD loader turns it into a
crowd region, which training leaves out and COCO evaluation never scores); category 11 ("others") is left
out, as mmdet's CocoDataset (the official SimD VisDrone setup) leaves out categories outside its class list.
Boxes with a width or height <= 0 are left out and counted.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Tuple

from PIL import Image

from simd.datasets import VISDRONE_CLASSES

IGNORED, OTHERS = 0, 11


def parse_line(line: str, where: str) -> Tuple[List[float], int]:
    """``([x, y, w, h], category)`` of one annotation line; a malformed line is an error naming ``where``."""
    fields = [f for f in line.strip().split(",") if f != ""]
    if len(fields) < 6:
        raise ValueError(
            f"{where}: expected 'x,y,w,h,score,category,truncation,occlusion', got {line.strip()!r}"
        )
    try:
        box = [float(v) for v in fields[:4]]
        category = int(fields[5])
    except ValueError as e:
        raise ValueError(f"{where}: not a number in {line.strip()!r}") from e
    if not 0 <= category <= 11:
        raise ValueError(f"{where}: category {category} is outside VisDrone's 0-11")
    return box, category


def convert(src: str) -> Tuple[Dict, Dict[str, int]]:
    """The COCO dict of the split at ``src`` and counts (objects, ignored regions, others, invalid boxes)."""
    image_dir, ann_dir = os.path.join(src, "images"), os.path.join(src, "annotations")
    for path in (image_dir, ann_dir):
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"{path} does not exist (expected the VisDrone release layout "
                "<split>/images/*.jpg and <split>/annotations/*.txt)"
            )
    names = sorted(f for f in os.listdir(image_dir) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    categories = [{"id": IGNORED, "name": "ignored regions"}]
    categories += [{"id": i + 1, "name": n} for i, n in enumerate(VISDRONE_CLASSES)]
    images, annotations = [], []
    counts = {"objects": 0, "ignored_regions": 0, "others": 0, "invalid_boxes": 0}
    for image_id, name in enumerate(names, start=1):
        with Image.open(os.path.join(image_dir, name)) as picture:
            width, height = picture.size
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        txt = os.path.join(ann_dir, os.path.splitext(name)[0] + ".txt")
        if not os.path.exists(txt):
            raise FileNotFoundError(f"{txt} does not exist (annotation file of {name})")
        with open(txt) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                box, category = parse_line(line, f"{txt}:{number}")
                if category == OTHERS:
                    counts["others"] += 1
                    continue
                if box[2] <= 0 or box[3] <= 0:
                    counts["invalid_boxes"] += 1
                    continue
                crowd = int(category == IGNORED)
                counts["ignored_regions" if crowd else "objects"] += 1
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": crowd,
                    }
                )
    return {"images": images, "annotations": annotations, "categories": categories}, counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", help="a VisDrone2019-DET split folder (with images/ and annotations/)")
    parser.add_argument("output", help="COCO json to write")
    args = parser.parse_args(argv)
    data, counts = convert(args.src)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(data, f)
    print(
        f"wrote {args.output}: {len(data['images'])} images, {counts['objects']} objects, "
        f"{counts['ignored_regions']} ignored regions; left out {counts['others']} 'others' and "
        f"{counts['invalid_boxes']} boxes with width or height <= 0"
    )


if __name__ == "__main__":
    main()
