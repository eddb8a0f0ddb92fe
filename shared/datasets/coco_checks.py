"""Load-time checks of COCO- (and LVIS-) format detection annotations, naming file, record and field.

Ids and sizes (:func:`check_coco_records`, always an error, :class:`InvalidRecordError`): every annotation
must point at an image of ``images`` and at a category of ``categories`` by its integer id (a ``"3"`` given
as a string is not the category 3); annotation, image and category ids must be unique; every image needs a
positive ``width`` and ``height``. Left alone, each of these silently changes the data: pycocotools and
detectron2 index by id, so an annotation of an unknown image vanishes, two images sharing an id share each
other's objects, duplicate annotation ids make COCOeval match the wrong objects, and 0-based category ids
drop one class and shift every other (a hint says so).

Boxes (:func:`check_coco_json_boxes`, refused or dropped by policy, :class:`InvalidBoxError`). A COCO
``bbox`` is ``[x, y, width, height]``. A box with a non-finite number (NaN, inf), a width or height that is
not positive, or of which less than half lies inside its image cannot be trained on: detectron2's mapper
would silently drop a NaN box, clip an inf width (or ``[0, 0, 1e30, 1e30]``) to a whole-image box and turn
a negative width into a mirrored box. These helpers find such boxes and either raise naming the file, the
record (annotation id, image) and the field, or drop them and report how many were dropped (the caller logs
the count).

    from shared.datasets.coco_checks import check_coco_json_boxes, check_coco_records, read_coco_json
    data = read_coco_json(path)                     # a malformed json / wrong top-level type names the file
    check_coco_records(data, path)                  # ids and image sizes
    data, dropped = check_coco_json_boxes(data, path, drop=False)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from shared.datasets.readers import load_json

__all__ = [
    "InvalidBox",
    "InvalidBoxError",
    "InvalidRecordError",
    "box_problem",
    "check_coco_json_boxes",
    "check_coco_records",
    "find_invalid_boxes",
    "find_record_problems",
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


#: a box of which less than this fraction of its area lies inside its image is refused (``[0, 0, 1e30, 1e30]``
#: would otherwise be clipped to a whole-image box); boxes crossing the border by a few pixels are kept
MIN_INSIDE_FRACTION = 0.5


def inside_fraction(bbox: Sequence[float], width: float, height: float) -> float:
    """Fraction of the area of the XYWH box ``bbox`` inside the image ``[0, width] x [0, height]``:
    ``(min(x + w, W) - max(x, 0))+ * (min(y + h, H) - max(y, 0))+ / (w * h)``."""
    x, y, w, h = (float(v) for v in bbox)
    inside_w = max(0.0, min(x + w, float(width)) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, float(height)) - max(y, 0.0))
    return (inside_w / w) * (inside_h / h)  # as two ratios: w * h overflows to inf for 1e200-sized boxes


def box_problem(bbox: Any, image_size: Optional[Tuple[Any, Any]] = None) -> Optional[Tuple[str, Any]]:
    """``None`` when ``bbox`` is a usable COCO ``[x, y, w, h]``; otherwise ``(field, value)`` of the first
    problem: ``"bbox"`` (not 4 numbers), ``"bbox.<x|y|width|height> (non-finite)"``,
    ``"bbox.<width|height> (not positive)"`` or, with ``image_size = (width, height)``, ``"bbox (less than
    half inside the W x H image)"`` (:data:`MIN_INSIDE_FRACTION`)."""
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
    if image_size is not None and _positive_size(image_size[0]) and _positive_size(image_size[1]):
        if inside_fraction(bbox, *image_size) < MIN_INSIDE_FRACTION:
            return f"bbox (less than half inside the {image_size[0]} x {image_size[1]} image)", bbox
    return None


def find_invalid_boxes(data: Dict[str, Any]) -> List[Tuple[int, InvalidBox]]:
    """``(index in data["annotations"], InvalidBox)`` for every annotation whose box :func:`box_problem`
    refuses (checked against its image's ``width`` / ``height`` when the image is known)."""
    images = [img for img in data.get("images", []) if isinstance(img, dict)]
    files = {img.get("id"): img.get("file_name") for img in images}
    sizes = {img.get("id"): (img.get("width"), img.get("height")) for img in images}
    found = []
    for index, ann in enumerate(data.get("annotations", [])):
        image_id = ann.get("image_id")
        problem = box_problem(ann.get("bbox"), sizes.get(image_id) if _hashable(image_id) else None)
        if problem is not None:
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


# ------------------------------------------------------------------------------------------- ids and sizes
class InvalidRecordError(ValueError):
    """Raised for ids or image sizes that cannot be used; ``problems`` lists every one found (as text),
    ``source`` names the file."""

    def __init__(self, source: str, problems: Sequence[str], hint: str = ""):
        self.source, self.problems = source, list(problems)
        shown = "; ".join(self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        super().__init__(
            f"{source}: {len(self.problems)} invalid record(s): {shown}{more}.{(' ' + hint) if hint else ''}"
        )


def _hashable(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, type(None)))


def _is_integer_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_size(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0 and float(value).is_integer())


def _image_label(image: Dict[str, Any]) -> str:
    name = image.get("file_name")
    return f"image id {image.get('id')!r}" + (f" ({name})" if name else "")


def _zero_based_hint(unknown: Sequence[Any], category_ids: Sequence[int]) -> str:
    """A hint when the annotations number the categories from 0 while ``categories`` numbers them from 1."""
    if 0 in unknown and category_ids and min(category_ids) == 1:
        return (f"The annotations' category ids look 0-based (category_id 0) while 'categories' numbers them "
                f"{min(category_ids)}..{max(category_ids)}: add 1 to every annotation's category_id (read "
                "as they are, one class would be lost and every other shifted to its neighbour).")
    return ""


def _annotations_look_fine(annotations: Sequence[Any], image_ids: set, categories: set) -> bool:
    """A quick pass over the annotations with sets (about what pycocotools' index costs, a fifth of a loop
    that examines each annotation): ids present and unique, every ``image_id`` an image, every
    ``category_id`` an integer category. False when anything is off (then each annotation is examined)."""
    try:
        ids = [a["id"] for a in annotations]
        if None in ids or len(set(ids)) != len(ids):
            return False
        if not {a["image_id"] for a in annotations} <= image_ids:
            return False
        used = {a["category_id"] for a in annotations}
    except (KeyError, TypeError):  # a record that is not an object, a missing key, an unhashable value
        return False
    return used <= categories and all(_is_integer_id(c) for c in used)


def find_record_problems(data: Dict[str, Any]) -> Tuple[List[str], str]:
    """Every id or size problem of a loaded COCO / LVIS json as ``"<record>: <field> = <value> (<why>)"``,
    plus a hint (0-based category ids) or ``""``. Checked: image ids unique and every image's ``width`` and
    ``height`` positive integers; category ids unique integers; annotation ids present and unique; every
    annotation's ``image_id`` an image of ``images`` and its ``category_id`` a category of ``categories``
    (the same integer, not a string)."""
    problems: List[str] = []
    images = [img for img in data.get("images", []) if isinstance(img, dict)]
    image_ids = Counter(img.get("id") for img in images if _hashable(img.get("id")))
    for image in images:
        if "id" not in image or not _hashable(image["id"]):
            problems.append(f"image record {image!r:.80}: id missing or not a number/string")
        elif image_ids[image["id"]] > 1:
            problems.append(f"{_image_label(image)}: id = {image['id']!r} (shared by "
                            f"{image_ids[image['id']]} images; image ids must be unique)")
        for field in ("width", "height"):
            if not _positive_size(image.get(field)):
                problems.append(f"{_image_label(image)}: {field} = {image.get(field)!r} (must be a positive "
                                "integer, the size of the image file)")
    categories = [c for c in data.get("categories", []) if isinstance(c, dict)]
    category_ids = Counter(c.get("id") for c in categories if _hashable(c.get("id")))
    for category in categories:
        if not _is_integer_id(category.get("id")):
            problems.append(f"category {category.get('name')!r}: id = {category.get('id')!r} (must be an "
                            "integer)")
        elif category_ids[category["id"]] > 1:
            problems.append(f"category {category.get('name')!r}: id = {category['id']!r} (shared by "
                            f"{category_ids[category['id']]} categories)")
    known_categories = {c for c in category_ids if _is_integer_id(c)}
    annotations = data.get("annotations", [])
    if _annotations_look_fine(annotations, set(image_ids), known_categories):
        return problems, ""
    by_text = {str(c): c for c in known_categories}
    annotation_ids = Counter(a.get("id") for a in annotations
                             if isinstance(a, dict) and _hashable(a.get("id")))
    unknown_categories: List[Any] = []
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            problems.append(f"annotation #{index}: not a JSON object ({ann!r:.40})")
            continue
        ann_id, image_id, category = ann.get("id"), ann.get("image_id"), ann.get("category_id")
        id_ok = ann_id is not None and _hashable(ann_id) and annotation_ids[ann_id] == 1
        image_ok = _hashable(image_id) and image_id in image_ids
        category_ok = _is_integer_id(category) and category in known_categories
        if id_ok and image_ok and category_ok:  # the common case: no message is built
            continue
        label = f"annotation id {ann_id!r} (#{index}) of image id {image_id!r}"
        if ann_id is None or not _hashable(ann_id):
            problems.append(f"{label}: id = {ann_id!r} (every annotation needs a unique id)")
        elif not id_ok:
            problems.append(f"{label}: id = {ann_id!r} (shared by {annotation_ids[ann_id]} annotations; "
                            "annotation ids must be unique)")
        if not image_ok:
            problems.append(f"{label}: image_id = {image_id!r} (no image in 'images' has this id)")
        if not category_ok:
            why = "no category in 'categories' has this id"
            if isinstance(category, str) and category.strip() in by_text:
                why = f"a string; the category id is the integer {by_text[category.strip()]}"
            elif not _is_integer_id(category):
                why = "not an integer"
            problems.append(f"{label}: category_id = {category!r} ({why})")
            unknown_categories.append(category)
    hint = _zero_based_hint(unknown_categories, sorted(known_categories))
    return problems, hint


def check_coco_records(data: Dict[str, Any], source: str) -> None:
    """Raise :class:`InvalidRecordError` naming ``source`` when :func:`find_record_problems` finds any."""
    problems, hint = find_record_problems(data)
    if problems:
        raise InvalidRecordError(source, problems, hint)
