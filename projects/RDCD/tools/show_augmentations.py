#!/usr/bin/env python
"""Write a PNG grid of augmented training views, so a person can see what the model is trained on.

Each row is one source image: the original, then ``--views`` independent draws of the configured pipeline
(``INPUT.COPY_DETECTION.AUGMENTATION``, SSCD's "advanced" by default); ``--overlays`` adds one row per image
with only the text and the emoji overlay, which the full pipeline applies rarely (p = 0.1 and 0.2). A title
names the pipeline and the training size; every row is labelled with its source image and every tile with
what it is ("original", "view 1", ..., "text overlay", "emoji overlay").

    python projects/RDCD/tools/show_augmentations.py --images datasets/DISC21/images/train --out aug.png
    python projects/RDCD/tools/show_augmentations.py --config-file projects/RDCD/configs/Base-RDCD.yaml \\
        --synthetic --out aug.png INPUT.COPY_DETECTION.TRAIN_SIZE 160
"""

import argparse
import os
import random
from typing import List

import rdcd  # noqa: F401  (compat layer first)
import numpy as np
import torch
from PIL import Image, ImageDraw

from rdcd.config import BASE_CONFIG, add_rdcd_config
from rdcd.datasets import list_images
from rdcd.transforms import augly_asset_dirs, build_overlays, build_train_transform
from shared.datasets.synthetic_copy_detection import generate_synthetic_copy_detection
from shared.engine import build_cfg


def to_image(tensor: torch.Tensor, mean, std) -> Image.Image:
    """Undo the normalisation of a [3, H, W] tensor."""
    pixels = tensor.permute(1, 2, 0).numpy() * np.asarray(std) + np.asarray(mean)
    return Image.fromarray((pixels.clip(0, 1) * 255).round().astype(np.uint8))


#: pixel height of one text line of the sheet (PIL's default font)
LINE = 14


def grid(rows: List[List[Image.Image]], cell: int, labels: List[str], tile_labels: List[List[str]],
         title: str = "") -> Image.Image:
    """Rows of images resized into ``cell`` x ``cell`` tiles under a ``title`` line; above each row its
    label, above each tile its own label (``tile_labels[i][j]``)."""
    top = LINE if title else 0
    height = top + (cell + 2 * LINE) * len(rows)
    out = Image.new("RGB", (cell * max(len(r) for r in rows), height), "white")
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((2, 1), title, fill="black")
    for i, (row, label) in enumerate(zip(rows, labels)):
        y = top + i * (cell + 2 * LINE)
        draw.text((2, y + 1), label, fill="black")
        for j, image in enumerate(row):
            draw.text((j * cell + 2, y + LINE + 1), tile_labels[i][j], fill=(0, 70, 160))
            tile = image.copy()
            tile.thumbnail((cell, cell))
            out.paste(tile, (j * cell + (cell - tile.width) // 2, y + 2 * LINE + (cell - tile.height) // 2))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default=BASE_CONFIG)
    parser.add_argument("--images", default="", help="folder of source images (first --num sorted files)")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic set's training images")
    parser.add_argument("--num", type=int, default=4, help="source images (rows)")
    parser.add_argument("--views", type=int, default=6, help="augmented views per image")
    parser.add_argument(
        "--overlays", action="store_true", help="also a row of text / emoji overlays per image"
    )
    parser.add_argument("--cell", type=int, default=160, help="tile side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="augmentations.png")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    cfg = build_cfg(add_rdcd_config, args.config_file, args.opts)
    if args.synthetic or not args.images:
        root = os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "synthetic_disc21")
        info = generate_synthetic_copy_detection(root, num_train=max(args.num, 8), image_size=160)
        args.images = info.path("train")
    paths = [p for _, p in list_images(args.images)][: args.num]
    if not paths:
        raise SystemExit(f"no images in {args.images!r}")
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    c = cfg.INPUT.COPY_DETECTION
    transform = build_train_transform(cfg)
    text, emoji = build_overlays(c.FONT)
    source = "AugLy fonts / Twemoji" if augly_asset_dirs() and not c.FONT else "fallback overlays"
    rows, labels, tile_labels = [], [], []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
        rows.append([image] + [to_image(transform(image), c.MEAN, c.STD) for _ in range(args.views)])
        labels.append(f"{os.path.basename(path)}: original, then {c.AUGMENTATION} views")
        tile_labels.append(["original"] + [f"view {k + 1}" for k in range(args.views)])
        if args.overlays:
            rows.append([image] + [(text if k % 2 == 0 else emoji)(image) for k in range(args.views)])
            labels.append(f"text / emoji overlays ({source})")
            tile_labels.append(["original"] + [("text" if k % 2 == 0 else "emoji") + " overlay"
                                               for k in range(args.views)])
    title = f"training views ({c.AUGMENTATION}, {c.TRAIN_SIZE} px, seed {args.seed})"
    grid(rows, args.cell, labels, tile_labels, title).save(args.out)
    print(f"wrote {args.out}: {len(rows)} rows x {args.views + 1} tiles ({source})")


if __name__ == "__main__":
    main()
