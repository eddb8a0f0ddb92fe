"""Reading input files so that a bad one is an error naming it, not a bare exception mid-run.

* :func:`load_json` -- malformed JSON, or a top level of the wrong type (a list where a COCO/LVIS dict is
  expected), raises :class:`InputFileError` with the path, line and column;
* :func:`read_image` -- detectron2's ``read_image`` (EXIF orientation, format conversion) whose failures
  (PIL's ``image file is truncated``, an unidentified file) raise :class:`ImageReadError` naming the file;
* :func:`install_reader_hooks` -- the same for the readers detectron2, FastReID and pycocotools call
  internally (``detection_utils.read_image``, ``fastreid.data.common.read_image``, ``COCO(json_file)``).
  :mod:`shared.engine` installs them on import and again when a trainer is built (FastReID is imported
  late), so every project's data loading gets them.
"""
from __future__ import annotations

import functools
import json
import logging
import sys
from typing import Any, Callable, Optional, Tuple, Type, Union

__all__ = ["ImageReadError", "InputFileError", "install_reader_hooks", "load_json", "read_image",
           "wrap_image_reader"]

logger = logging.getLogger(__name__)

_TYPE_NAMES = {dict: "a JSON object ({...})", list: "a JSON array ([...])", str: "a string",
               int: "an integer", float: "a number"}


class InputFileError(ValueError):
    """An input file whose content cannot be used (malformed, wrong top-level type)."""


class ImageReadError(OSError):
    """An image that cannot be decoded (truncated, not an image); the message names the file."""


def _type_name(t: type) -> str:
    return _TYPE_NAMES.get(t, t.__name__)


def load_json(path: str, expected_type: Optional[Union[Type, Tuple[Type, ...]]] = None,
              what: str = "") -> Any:
    """Parse ``path``; a syntax error or a top level that is not ``expected_type`` raises
    :class:`InputFileError` naming the file (``what``, e.g. "COCO annotations", is added to the message)."""
    label = f"{what} file {path}" if what else str(path)
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise InputFileError(f"malformed JSON in {label}: {err.msg} at line {err.lineno}, column "
                                 f"{err.colno}") from err
        except UnicodeDecodeError as err:
            raise InputFileError(f"{label} is not UTF-8 text (a JSON file was expected): {err}") from err
    if expected_type is not None and not isinstance(data, expected_type):
        types = expected_type if isinstance(expected_type, tuple) else (expected_type,)
        raise InputFileError(f"{label}: the top level must be {' or '.join(_type_name(t) for t in types)}, "
                             f"found {_type_name(type(data))}")
    return data


def wrap_image_reader(reader: Callable[..., Any]) -> Callable[..., Any]:
    """``reader(file_name, ...)`` whose decoding failures become :class:`ImageReadError` naming the file.
    A missing file stays a ``FileNotFoundError`` (it already names the path)."""
    if getattr(reader, "_names_the_file", False):
        return reader

    @functools.wraps(reader)
    def read(file_name, *args, **kwargs):
        try:
            return reader(file_name, *args, **kwargs)
        except (FileNotFoundError, ImageReadError):
            raise
        except (OSError, ValueError, SyntaxError) as err:  # PIL: truncated, unidentified, bad header
            raise ImageReadError(f"cannot read image {file_name}: {err} (a truncated or corrupt file? "
                                 "re-copy or remove it from the dataset)") from err

    read._names_the_file = True
    return read


def read_image(file_name: str, format: Optional[str] = None):
    """detectron2's ``read_image`` (HWC numpy array in ``format``) that names the file when it fails."""
    from detectron2.data import detection_utils

    return wrap_image_reader(detection_utils.read_image)(file_name, format)


def _wrap_coco_init(coco_cls: type) -> None:
    original = coco_cls.__init__
    if getattr(original, "_names_the_file", False):
        return

    @functools.wraps(original)
    def __init__(self, annotation_file=None, *args, **kwargs):
        try:
            original(self, annotation_file, *args, **kwargs)
        except json.JSONDecodeError as err:
            raise InputFileError(f"malformed JSON in COCO annotation file {annotation_file}: {err.msg} at "
                                 f"line {err.lineno}, column {err.colno}") from err
        except AssertionError as err:  # pycocotools: assert type(dataset)==dict, 'annotation file format ...'
            if "annotation file format" not in str(err):
                raise
            raise InputFileError(f"COCO annotation file {annotation_file}: the top level must be a JSON "
                                 'object ({"images": ..., "annotations": ..., "categories": ...})') from err

    __init__._names_the_file = True
    coco_cls.__init__ = __init__


def install_reader_hooks() -> None:
    """Make the readers of detectron2 (and FastReID / pycocotools, when imported) name a bad file."""
    from detectron2.data import detection_utils

    detection_utils.read_image = wrap_image_reader(detection_utils.read_image)
    common = sys.modules.get("fastreid.data.common")
    if common is not None and hasattr(common, "read_image"):
        common.read_image = wrap_image_reader(common.read_image)
    try:
        from pycocotools.coco import COCO
    except ImportError:  # pragma: no cover - pycocotools is a pinned dependency
        return
    _wrap_coco_init(COCO)
