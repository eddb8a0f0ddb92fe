"""What every project's ``predict.py`` shares: the flags, input expansion, a progress line with ETA, and the
whole command for detectors.

Flags (the same in every project; a project may add its own)::

    --run OUTPUT_DIR            a training run's folder (run.json, config.yaml, checkpoints)
    --input PATH [PATH ...]     image files, folders (searched recursively for image extensions) or globs
    --output DIR                where results go (default: OUTPUT_DIR/predictions)
    --checkpoint NAME           a checkpoint of the run (default: last_checkpoint, else model_final.pth)
    --device DEVICE             cpu, cuda, cuda:1 ... (default: CUDA when present)
    --gallery PATH [PATH ...]   retrieval projects: the images to rank (same expansion as --input)
    --references PATH [...]     copy detection: the reference images (same expansion as --input)

Detectors (SimD, IIF) run :func:`detection_predict_main`; it writes, under ``--output``:

* one picture per input image, at the image's path relative to the inputs' common folder (``.jpg``/``.png``
  kept, other formats written as ``.png``): the detections with score >= ``--draw-threshold``, each labelled
  "<class name> <score %>" with the class names saved with the run; images with a long side under 640 px
  are drawn enlarged to 640 px;
* ``coco_instances_results.json``: a list of COCO result records ``{"image_id", "category_id", "bbox": [x, y,
  w, h], "score", "file_name"}`` (+ ``"segmentation"`` RLE for mask models), every detection the model keeps
  (its own test threshold), category ids those of the training json;
* ``images.json``: a COCO ``images`` list ``[{"id", "file_name", "height", "width"}]`` (ids as in the
  results).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Iterable, Iterator, List, Optional, Sequence, TextIO, TypeVar

__all__ = ["IMAGE_EXTENSIONS", "Progress", "detection_predict_main", "expand_inputs", "output_names",
           "predict_argument_parser"]

T = TypeVar("T")

#: file extensions (lower case) taken from folders and globs
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def predict_argument_parser(description: str = "", *, gallery: bool = False,
                            references: bool = False) -> argparse.ArgumentParser:
    """The flags every ``predict.py`` takes (module docstring); ``gallery`` / ``references`` add those."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, metavar="OUTPUT_DIR",
                        help="the OUTPUT_DIR of a training run (run.json, config.yaml, checkpoints)")
    parser.add_argument("--input", required=True, nargs="+", metavar="PATH",
                        help="image files, folders (recursive) or glob patterns")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="folder for the results (default: OUTPUT_DIR/predictions)")
    parser.add_argument("--checkpoint", default=None, metavar="NAME",
                        help="checkpoint name in the run folder or a path (default: last_checkpoint, else "
                             "model_final.pth)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    if gallery:
        parser.add_argument("--gallery", nargs="+", metavar="PATH", default=None,
                            help="gallery images to rank (files, folders, globs)")
    if references:
        parser.add_argument("--references", nargs="+", metavar="PATH", default=None,
                            help="reference images (files, folders, globs)")
    return parser


def _is_image(path: str, extensions: Sequence[str]) -> bool:
    return os.path.splitext(path)[1].lower() in extensions


def expand_inputs(patterns: Sequence[str], extensions: Sequence[str] = IMAGE_EXTENSIONS,
                  flag: str = "--input") -> List[str]:
    """Image paths named by ``patterns``, in order, without duplicates.

    A file is taken as given (whatever its extension); a folder gives the files below it (recursively)
    whose extension is in ``extensions``, sorted; anything else is a glob pattern (``**`` recursive)
    filtered the same way. A pattern that matches nothing is a ``FileNotFoundError`` naming it and ``flag``.
    """
    extensions = tuple(e.lower() for e in extensions)
    found: List[str] = []
    for pattern in patterns:
        if os.path.isfile(pattern):
            matches = [pattern]
        elif os.path.isdir(pattern):
            matches = sorted(os.path.join(root, f) for root, _, files in os.walk(pattern) for f in files
                             if _is_image(f, extensions))
            if not matches:
                raise FileNotFoundError(f"{flag} {pattern!r}: the folder holds no image file "
                                        f"({', '.join(extensions)}), searched recursively")
        else:
            matches = sorted(p for p in glob.glob(pattern, recursive=True)
                             if os.path.isfile(p) and _is_image(p, extensions))
            if not matches:
                raise FileNotFoundError(f"{flag} {pattern!r}: no such file or folder, and as a glob pattern "
                                        f"it matches no image file ({', '.join(extensions)})")
        found.extend(matches)
    seen = set()
    unique = []
    for path in found:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def output_names(paths: Sequence[str]) -> List[str]:
    """Each path relative to the common folder of all ``paths`` (unique because the paths are)."""
    if not paths:
        return []
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(p) for p in absolute])
    return [os.path.relpath(p, common) for p in absolute]


class Progress:
    """``for item in Progress(items, "predict"):`` -- prints ``predict 120/3000 images  4.1/s  elapsed 0:00:29
    eta 0:11:42`` to ``stream`` at most every ``interval`` seconds, and a last line at the end (inputs done in
    less than ``interval`` seconds print only that line)."""

    def __init__(self, items: Iterable[T], label: str, total: Optional[int] = None, unit: str = "images",
                 interval: float = 5.0, stream: Optional[TextIO] = None):
        self.items = items
        self.label = label
        self.total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
        self.unit = unit
        self.interval = interval
        self.stream = stream or sys.stderr

    @staticmethod
    def _clock(seconds: float) -> str:
        seconds = int(round(seconds))
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def line(self, done: int, elapsed: float) -> str:
        """The progress line after ``done`` items in ``elapsed`` seconds.

        ETA = elapsed / done * (total - done)."""
        rate = done / elapsed if elapsed > 0 else 0.0
        total = self.total if self.total is not None else "?"
        text = f"{self.label} {done}/{total} {self.unit}  {rate:.1f}/s  elapsed {self._clock(elapsed)}"
        if self.total is not None and done and done < self.total:
            text += f"  eta {self._clock(elapsed / done * (self.total - done))}"
        return text

    def __iter__(self) -> Iterator[T]:
        start = last = time.perf_counter()
        done = 0
        for item in self.items:
            yield item
            done += 1
            now = time.perf_counter()
            if now - last >= self.interval and (self.total is None or done < self.total):
                print(self.line(done, now - start), file=self.stream, flush=True)
                last = now
        print(self.line(done, time.perf_counter() - start), file=self.stream, flush=True)


def _picture_name(name: str) -> str:
    stem, ext = os.path.splitext(name)
    return name if ext.lower() in (".jpg", ".jpeg", ".png") else stem + ".png"


def detection_predict_main(argv: Optional[Sequence[str]] = None, description: str = "") -> int:
    """The ``predict.py`` of a detection project (SimD, IIF): pictures with class names and scores, COCO
    results and an images list under ``--output`` (module docstring). Returns the exit code."""
    parser = predict_argument_parser(description)
    parser.add_argument("--draw-threshold", type=float, default=0.5,
                        help="score a detection needs to be drawn (the json keeps every detection)")
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from shared.engine.run import load_run

    paths = expand_inputs(args.input)  # before the model is built: a typo fails fast
    predictor = load_run(args.run, checkpoint=args.checkpoint, device=args.device)
    output = args.output or os.path.join(args.run, "predictions")
    os.makedirs(output, exist_ok=True)
    from detectron2.data.detection_utils import read_image

    results, images = [], []
    names = output_names(paths)
    for image_id, (path, name) in enumerate(Progress(list(zip(paths, names)), "predict")):
        image = read_image(path, format="BGR")
        instances = predictor(image)["instances"].to("cpu")
        images.append({"id": image_id, "file_name": name, "height": int(image.shape[0]),
                       "width": int(image.shape[1])})
        results.extend(predictor.coco_records(instances, image_id, name))
        picture = predictor.draw(image, instances, args.draw_threshold)
        target = os.path.join(output, _picture_name(name))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Image.fromarray(np.ascontiguousarray(picture)).save(target)
    with open(os.path.join(output, "coco_instances_results.json"), "w") as f:
        json.dump(results, f)
    with open(os.path.join(output, "images.json"), "w") as f:
        json.dump(images, f, indent=1)
    print(f"{len(paths)} images, {len(results)} detections -> {output} (pictures, "
          "coco_instances_results.json, images.json)")
    return 0
