"""Load-time checks of COCO-format detection annotations: every box is refused or dropped by name.

A COCO ``bbox`` is ``[x, y, width, height]``. A box with a non-finite number (NaN, inf), or a width or height
that is not positive, cannot be trained on: detectron2's mapper would silently drop a NaN box, clip an inf
width to the image edge and turn a negative width into a mirrored box. These helpers find such boxes and
either raise :class:`InvalidBoxError` naming the file, the record (annotation id, image) and the field, or
drop them and report how many were dropped (the caller logs the count).

    from shared.datasets.coco_checks import check_coco_json_boxes, read_coco_json
    data = read_coco_json(path)                     # a malformed json / wrong top-level type names the file
    data, dropped = check_coco_json_boxes(data, path, drop=False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from shared.datasets.readers import load_json

__all__ = [
    "InvalidBox",
    "InvalidBoxError",
    "box_problem",
    "check_coco_json_boxes",
    "find_invalid_boxes",
    "read_coco_json",
]

_FIELDS = ("x", "y", "width", "height")


@dataclass(frozen=True)
class InvalidBox:
    """One refused box: its annotation id, image id, image file name (when known), field and value."""

    annotation_id: Any
    image_id: Any
    image_file: Optional[str]
    field: str
    value: Any

    def describe(self) -> str:
        image = f"image id {self.image_id!r}" + (f" ({self.image_file})" if self.image_file else "")
        return f"annotation id {self.annotation_id!r} of {image}: {self.field} = {self.value!r}"


class InvalidBoxError(ValueError):
    """Raised for boxes that cannot be trained on; ``boxes`` lists every one found, ``source`` the file."""

    def __init__(self, source: str, boxes: Sequence[InvalidBox], hint: str = ""):
        self.source, self.boxes = source, list(boxes)
        shown = "; ".join(b.describe() for b in self.boxes[:3])
        more = f" (and {len(self.boxes) - 3} more)" if len(self.boxes) > 3 else ""
        super().__init__(
            f"{source}: {len(self.boxes)} invalid box(es): {shown}{more}.{(' ' + hint) if hint else ''}"
        )


def box_problem(bbox: Any) -> Optional[Tuple[str, Any]]:
    """``None`` when ``bbox`` is a usable COCO ``[x, y, w, h]``; otherwise ``(field, value)`` of the first
    problem: ``"bbox"`` (not 4 numbers), ``"bbox.<x|y|width|height> (non-finite)"`` or
    ``"bbox.<width|height> (not positive)"``."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return "bbox (expected [x, y, width, height])", bbox
    for name, value in zip(_FIELDS, bbox):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"bbox.{name} (not a number)", value
        if not math.isfinite(value):
            return f"bbox.{name} (non-finite)", value
    for name, value in zip(_FIELDS[2:], bbox[2:]):
        if value <= 0:
            return f"bbox.{name} (not positive)", value
    return None


def find_invalid_boxes(data: Dict[str, Any]) -> List[Tuple[int, InvalidBox]]:
    """``(index in data["annotations"], InvalidBox)`` for every annotation whose box :func:`box_problem`
    refuses."""
    files = {img.get("id"): img.get("file_name") for img in data.get("images", []) if isinstance(img, dict)}
    found = []
    for index, ann in enumerate(data.get("annotations", [])):
        problem = box_problem(ann.get("bbox"))
        if problem is not None:
            image_id = ann.get("image_id")
            found.append((index, InvalidBox(ann.get("id"), image_id, files.get(image_id), *problem)))
    return found


def check_coco_json_boxes(
    data: Dict[str, Any], source: str, drop: bool = False, hint: str = ""
) -> Tuple[Dict[str, Any], List[InvalidBox]]:
    """Refuse (``drop=False``: :class:`InvalidBoxError`) or drop (``drop=True``) the invalid boxes of a
    loaded COCO json. Returns ``(data without them, the dropped boxes)``; ``data`` itself is not modified."""
    found = find_invalid_boxes(data)
    if not found:
        return data, []
    if not drop:
        raise InvalidBoxError(source, [box for _, box in found], hint)
    bad = {index for index, _ in found}
    kept = dict(data)
    kept["annotations"] = [a for i, a in enumerate(data["annotations"]) if i not in bad]
    return kept, [box for _, box in found]


def read_coco_json(path: str) -> Dict[str, Any]:
    """The json at ``path`` as a dict with ``images``, ``annotations`` and ``categories`` lists; a malformed
    file or a wrong top-level type is a ``ValueError`` naming the file
    (``shared.datasets.readers.load_json``)."""
    data = load_json(path, dict, "COCO annotations")  # malformed / wrong top level: InputFileError naming it
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: '{key}' must be a list (got {type(data.get(key)).__name__})")
    return data
