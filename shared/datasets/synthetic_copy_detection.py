"""A small deterministic synthetic image-copy-detection set in DISC21's on-disk layout.

DISC21 (Image Similarity Challenge 2021) ships three image folders and a ground-truth CSV:

* references (``R000000.jpg`` ...), the database;
* queries (``Q00000.jpg`` ...), some of them edited copies of a reference, the others unrelated;
* a training / background set (``T000000.jpg`` ...), used for training, PCA-whitening and score normalisation;
* a CSV with header ``query_id,reference_id`` and one row per query; the reference is empty when the
  query has no match.

Two folder conventions are produced (both are read by the RDCD project):

* ``layout="rdcd"`` (the RDCD test set): ``images/references``, ``images/dev_queries``, ``images/train``
  and ``dev_ground_truth.csv``;
* ``layout="sscd"`` (SSCD's ``disc_eval``): ``val_ref``, ``val_query``, ``training`` and
  ``val_groundtruth_matches.csv``.

Images are procedural scenes (a two-colour gradient with random ellipses, boxes, polygons and lines);
a matching query is its reference after 1-3 random edits among crop, flip, 90-degree rotation, colour
change, grayscale, blur, JPEG re-encoding, a caption and a border. Generation is deterministic in
``seed`` and idempotent: an existing complete set with the same parameters is reused.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

__all__ = [
    "LAYOUTS",
    "CopyDetectionLayout",
    "SyntheticCopyDetectionInfo",
    "generate_synthetic_copy_detection",
    "read_ground_truth_csv",
]


@dataclass(frozen=True)
class CopyDetectionLayout:
    """Relative paths of the three image folders and of the ground-truth CSV inside a dataset root."""

    references: str
    queries: str
    train: str
    ground_truth: str


#: the two DISC21 folder conventions (RDCD's test-set layout and SSCD's ``disc_eval`` layout)
LAYOUTS: Dict[str, CopyDetectionLayout] = {
    "rdcd": CopyDetectionLayout(
        "images/references", "images/dev_queries", "images/train", "dev_ground_truth.csv"
    ),
    "sscd": CopyDetectionLayout("val_ref", "val_query", "training", "val_groundtruth_matches.csv"),
}

_MARKER = ".synthetic_copy_detection.json"


@dataclass
class SyntheticCopyDetectionInfo:
    """What was generated: the root, its layout and the (query_id, reference_id or "") rows of the CSV."""

    root: str
    layout: str
    num_references: int
    num_matching_queries: int
    num_distractor_queries: int
    num_train: int
    image_size: int
    seed: int
    ground_truth: List[Tuple[str, str]] = field(default_factory=list)

    def path(self, part: str) -> str:
        """Absolute path of ``part`` ∈ {references, queries, train, ground_truth}."""
        return os.path.join(self.root, getattr(LAYOUTS[self.layout], part))


def read_ground_truth_csv(path: str) -> List[Tuple[str, str]]:
    """Rows ``(query_id, reference_id)`` of a DISC21 ground-truth CSV (reference ``""`` = no match).

    Raises ``ValueError`` naming the file and line when the header is not ``query_id,reference_id`` or a
    row does not have exactly two fields or has an empty query id.
    """
    rows: List[Tuple[str, str]] = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["query_id", "reference_id"]:
            raise ValueError(
                f"malformed ground-truth CSV {path!r}: the first line must be the header "
                f"'query_id,reference_id', got {header!r}"
            )
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2 or not row[0].strip():
                raise ValueError(
                    f"malformed ground-truth CSV {path!r}, line {line_no}: expected "
                    f"'query_id,reference_id' (reference may be empty), got {row!r}"
                )
            rows.append((row[0].strip(), row[1].strip()))
    return rows


# --------------------------------------------------------------------------- procedural images
def _random_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _scene(rng: np.random.Generator, size: int) -> Image.Image:
    """A gradient background with 4-10 random filled shapes and lines."""
    top, bottom = np.array(_random_color(rng), float), np.array(_random_color(rng), float)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((1, size, 1))
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 11))):
        x0, y0 = rng.integers(-size // 4, size, size=2)
        w, h = rng.integers(size // 8, size // 2, size=2)
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.ellipse(box, fill=_random_color(rng))
        elif kind == 1:
            draw.rectangle(box, fill=_random_color(rng))
        elif kind == 2:
            points = [tuple(int(v) for v in rng.integers(0, size, size=2)) for _ in range(3)]
            draw.polygon(points, fill=_random_color(rng))
        else:
            draw.line(box, fill=_random_color(rng), width=int(rng.integers(1, max(2, size // 16))))
    return image


# --------------------------------------------------------------------------- edits that make a copy
def _edit_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    size = image.size[0]
    side = int(size * rng.uniform(0.6, 0.9))
    x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    return image.crop((x0, y0, x0 + side, y0 + side)).resize(image.size, Image.BILINEAR)


def _edit_flip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(image)


def _edit_rotate90(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.rotate(90 * int(rng.integers(1, 4)))


def _edit_colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.6, 1.4))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.6, 1.4))
    return ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.7))


def _edit_grayscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _edit_blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.5, 2.0)))


def _edit_jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(10, 50)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _edit_caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    size = image.size[0]
    font = ImageFont.load_default(size=max(8, size // 8))
    word = "".join(chr(int(c)) for c in rng.integers(ord("A"), ord("Z") + 1, size=int(rng.integers(3, 8))))
    ImageDraw.Draw(image).text(
        (int(rng.integers(0, size // 2)), int(rng.integers(0, size - size // 8))),
        word,
        fill=_random_color(rng),
        font=font,
    )
    return image


def _edit_border(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width = int(image.size[0] * rng.uniform(0.05, 0.15))
    return ImageOps.expand(image, border=width, fill=_random_color(rng)).resize(image.size, Image.BILINEAR)


_EDITS: List[Callable[[Image.Image, np.random.Generator], Image.Image]] = [
    _edit_crop,
    _edit_flip,
    _edit_rotate90,
    _edit_colour,
    _edit_grayscale,
    _edit_blur,
    _edit_jpeg,
    _edit_caption,
    _edit_border,
]


def _make_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Apply 1-3 distinct random edits (in random order) to a copy of ``image``."""
    chosen = rng.choice(len(_EDITS), size=int(rng.integers(1, 4)), replace=False)
    out = image.copy()
    for index in chosen:
        out = _EDITS[int(index)](out, rng)
    return out


# --------------------------------------------------------------------------- the generator
def generate_synthetic_copy_detection(
    root: str,
    num_references: int = 200,
    num_matching_queries: int = 100,
    num_distractor_queries: int = 100,
    num_train: int = 300,
    image_size: int = 96,
    seed: int = 0,
    layout: str = "rdcd",
) -> SyntheticCopyDetectionInfo:
    """Write (or reuse) a synthetic DISC21-style set under ``root`` and describe it.

    ``num_matching_queries`` distinct references get one edited copy each (``num_matching_queries`` ≤
    ``num_references``); distractor queries are edited versions of scenes that are in neither the
    references nor the training set. Query ids are shuffled so matches are not the first ids.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown copy-detection layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    if not 0 <= num_matching_queries <= num_references:
        raise ValueError(
            f"num_matching_queries={num_matching_queries} must be between 0 and "
            f"num_references={num_references}"
        )
    params = dict(
        root=os.path.abspath(root),
        layout=layout,
        num_references=num_references,
        num_matching_queries=num_matching_queries,
        num_distractor_queries=num_distractor_queries,
        num_train=num_train,
        image_size=image_size,
        seed=seed,
    )
    marker = os.path.join(root, _MARKER)
    existing = _read_marker(marker)
    if existing is not None and {k: existing.get(k) for k in params} == params:
        return SyntheticCopyDetectionInfo(**params, ground_truth=[tuple(r) for r in existing["ground_truth"]])

    info = SyntheticCopyDetectionInfo(**params)
    folders = LAYOUTS[layout]
    for part in ("references", "queries", "train"):
        os.makedirs(os.path.join(root, getattr(folders, part)), exist_ok=True)
    rng = np.random.default_rng(seed)

    references = [_scene(rng, image_size) for _ in range(num_references)]
    for index, image in enumerate(references):
        image.save(os.path.join(info.path("references"), f"R{index:06d}.jpg"), quality=95)
    for index in range(num_train):
        _scene(rng, image_size).save(os.path.join(info.path("train"), f"T{index:06d}.jpg"), quality=95)

    matched_refs = rng.choice(num_references, size=num_matching_queries, replace=False)
    sources: List[Optional[int]] = [int(r) for r in matched_refs] + [None] * num_distractor_queries
    order = rng.permutation(len(sources))
    for query_index, source_index in enumerate(order):
        reference = sources[int(source_index)]
        original = references[reference] if reference is not None else _scene(rng, image_size)
        query_id = f"Q{query_index:05d}"
        _make_copy(original, rng).save(os.path.join(info.path("queries"), f"{query_id}.jpg"), quality=90)
        info.ground_truth.append((query_id, "" if reference is None else f"R{reference:06d}"))

    with open(info.path("ground_truth"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query_id", "reference_id"])
        writer.writerows(info.ground_truth)
    with open(marker, "w") as f:
        json.dump(asdict(info), f)
    return info


def _read_marker(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
