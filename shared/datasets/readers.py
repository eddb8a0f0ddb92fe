"""Reading input files so that a bad one is an error naming it, not a bare exception mid-run.

* :func:`load_json` -- malformed JSON, or a top level of the wrong type (a list where a COCO/LVIS dict is
  expected), raises :class:`InputFileError` with the path, line and column;
* :func:`read_image` -- detectron2's ``read_image`` (EXIF orientation, format conversion) whose failures
  (PIL's ``image file is truncated``, an unidentified file, an image over PIL's pixel limit) raise
  :class:`ImageReadError` naming the file;
* :func:`to_8bit` -- 16-bit images (PIL modes ``I;16*``, e.g. a 16-bit grayscale PNG) are converted to 8 bits
  by scaling, ``v8 = round(v16 / 257)``, with a log line (PIL's own ``convert("RGB")`` clips them at 255: a
  nearly white image); 32-bit integer or float images have no defined 8-bit reading and are refused;
* the pixel limit: PIL refuses an image of more than 2 x ``Image.MAX_IMAGE_PIXELS`` pixels (a defence against
  decompression bombs); for trusted large images set ``$TINYVISION_MAX_IMAGE_PIXELS`` (pixels; 0: no limit);
* :func:`install_reader_hooks` -- the same for the readers detectron2, FastReID and pycocotools call
  internally (``detection_utils.read_image``, ``fastreid.data.common.read_image``, ``COCO(json_file)``), and
  the id / size checks of :func:`shared.datasets.coco_checks.check_coco_records` for every COCO / LVIS json
  read by pycocotools' ``COCO`` or lvis-api's ``LVIS`` (detectron2's ``load_coco_json`` and
  ``load_lvis_json``, the COCO / LVIS evaluators). :mod:`shared.engine` installs them on import and again when
  a trainer is built (FastReID is imported late), so every project's data loading gets them.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from typing import Any, Callable, Optional, Tuple, Type, Union

import numpy as np
from PIL import Image, ImageOps

__all__ = ["MAX_PIXELS_ENV", "ImageReadError", "InputFileError", "install_reader_hooks", "load_json",
           "open_rgb", "read_image", "to_8bit", "wrap_image_reader"]

logger = logging.getLogger(__name__)

#: environment variable that sets PIL's ``Image.MAX_IMAGE_PIXELS`` (pixels; 0: no limit) for trusted images
MAX_PIXELS_ENV = "TINYVISION_MAX_IMAGE_PIXELS"
#: PIL modes of 16-bit single-channel images (PNG and TIFF grayscale)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_logged_16_bit = False

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
        apply_pixel_limit()
        try:
            return reader(file_name, *args, **kwargs)
        except (FileNotFoundError, ImageReadError):
            raise
        except Image.DecompressionBombError as err:
            raise ImageReadError(
                f"cannot read image {file_name}: {err} PIL refuses images of more than 2 x "
                "Image.MAX_IMAGE_PIXELS pixels; if the file is trusted, raise the limit with the "
                f"environment variable {MAX_PIXELS_ENV}=<pixels> (0: no limit)") from err
        except (OSError, ValueError, SyntaxError) as err:  # PIL: truncated, unidentified, bad header
            raise ImageReadError(f"cannot read image {file_name}: {err} (a truncated or corrupt file? "
                                 "re-copy or remove it from the dataset)") from err

    read._names_the_file = True
    return read


def apply_pixel_limit() -> None:
    """Set PIL's ``Image.MAX_IMAGE_PIXELS`` from ``$TINYVISION_MAX_IMAGE_PIXELS`` when it is set (0: none)."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return
    try:
        pixels = int(value)
    except ValueError as err:
        raise ValueError(f"${MAX_PIXELS_ENV}={value!r}: expected a number of pixels (0: no limit)") from err
    Image.MAX_IMAGE_PIXELS = pixels if pixels > 0 else None


def to_8bit(image: Image.Image, file_name: str, file_format: Optional[str] = None) -> Image.Image:
    """``image`` with 8-bit channels: a 16-bit one (:data:`SIXTEEN_BIT_MODES`, or mode ``I`` read from a PNG,
    as older Pillow reads 16-bit grayscale) becomes mode ``L`` with ``v8 = round(v16 / 257)`` (0 -> 0,
    65535 -> 255, and an 8-bit value ``k`` stored as ``257 k`` comes back as ``k``); other 32-bit integer or
    float images (modes ``I``, ``F``) raise :class:`ImageReadError` naming the file. Others are unchanged.
    ``file_format``: the file's format (``image.format`` by default; a transposed image has lost it)."""
    global _logged_16_bit
    mode = image.mode
    file_format = file_format or image.format
    if mode in SIXTEEN_BIT_MODES or (mode == "I" and file_format == "PNG"):
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        converted = Image.fromarray(np.rint(values / 257.0).astype(np.uint8))  # mode L
        if not _logged_16_bit:
            logger.info("16-bit image %s (PIL mode %s) converted to 8 bits as round(value / 257); other "
                        "16-bit images are converted the same way without a log line", file_name, mode)
            _logged_16_bit = True
        return converted
    if mode in ("I", "F"):
        raise ImageReadError(
            f"cannot read image {file_name}: a 32-bit {'integer' if mode == 'I' else 'float'} image (PIL "
            f"mode {mode}) has no defined 8-bit reading; convert it to an 8-bit (or 16-bit) PNG or JPEG")
    return image


def _read_detectron2(file_name: str, format: Optional[str] = None) -> np.ndarray:
    """detectron2's ``detection_utils.read_image`` contract (EXIF orientation applied, HWC array in
    ``format``) with 16-bit images scaled to 8 bits (:func:`to_8bit`)."""
    from detectron2.data import detection_utils
    from detectron2.utils.file_io import PathManager

    with PathManager.open(file_name, "rb") as f:
        image = Image.open(f)
        file_format = image.format
        image = detection_utils._apply_exif_orientation(image)
        return detection_utils.convert_PIL_to_numpy(to_8bit(image, file_name, file_format), format)


def _read_fastreid(file_name: str, format: Optional[str] = None) -> Image.Image:
    """FastReID's ``read_image`` contract (EXIF orientation applied, a PIL image, grayscale repeated to three
    channels) with 16-bit images scaled to 8 bits (:func:`to_8bit`)."""
    from fastreid.utils.file_io import PathManager

    with PathManager.open(file_name, "rb") as f:
        image = Image.open(f)
        file_format = image.format
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - a broken EXIF block leaves the orientation alone, as FastReID does
            pass
        image = to_8bit(image, file_name, file_format)
        if format is not None:
            image = image.convert("RGB" if format == "BGR" else format)
        array = np.asarray(image)
        if format == "L":
            array = np.expand_dims(array, -1)
        elif format == "BGR":
            array = array[:, :, ::-1]
        elif array.ndim == 2:
            array = np.repeat(array[..., np.newaxis], 3, axis=-1)
        return Image.fromarray(array)


def _open_rgb(file_name: str) -> Image.Image:
    with Image.open(file_name) as image:
        return to_8bit(image, file_name).convert("RGB")


#: ``open_rgb(file_name)``: the image as an RGB PIL image, for the projects that read with PIL directly (DAS,
#: RDCD, IIF classification); 16-bit images are scaled by :func:`to_8bit`, and a corrupt file or one over the
#: pixel limit is an :class:`ImageReadError` naming it
open_rgb = wrap_image_reader(_open_rgb)


def read_image(file_name: str, format: Optional[str] = None):
    """detectron2's ``read_image`` (HWC numpy array in ``format``) that names the file when it fails and
    scales 16-bit images to 8 bits."""
    return wrap_image_reader(_read_detectron2)(file_name, format)


def _wrap_coco_init(coco_cls: type) -> None:
    original = coco_cls.__init__
    if getattr(original, "_names_the_file", False):
        return

    @functools.wraps(original)
    def __init__(self, annotation_file=None, *args, **kwargs):
        try:
            original(self, annotation_file, *args, **kwargs)
            if isinstance(annotation_file, (str, os.PathLike)):
                check_coco_records(self.dataset, os.fspath(annotation_file))
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


def _wrap_lvis_init(lvis_cls: type) -> None:
    original = lvis_cls.__init__
    if getattr(original, "_names_the_file", False):
        return

    @functools.wraps(original)
    def __init__(self, annotation_path, *args, **kwargs):
        original(self, annotation_path, *args, **kwargs)
        if isinstance(annotation_path, (str, os.PathLike)):
            check_coco_records(self.dataset, os.fspath(annotation_path))

    __init__._names_the_file = True
    lvis_cls.__init__ = __init__


def check_coco_records(data: Any, source: str) -> None:
    """:func:`shared.datasets.coco_checks.check_coco_records` (imported here: that module imports this)."""
    from shared.datasets.coco_checks import check_coco_records as check

    check(data, source)


def install_reader_hooks() -> None:
    """Make the readers of detectron2 (and FastReID / pycocotools / lvis-api, when imported) name a bad file,
    scale 16-bit images to 8 bits and check the ids of every COCO / LVIS json they read."""
    from detectron2.data import detection_utils

    apply_pixel_limit()
    if not getattr(detection_utils.read_image, "_names_the_file", False):
        detection_utils.read_image = wrap_image_reader(_read_detectron2)
    common = sys.modules.get("fastreid.data.common")
    if common is not None and not getattr(getattr(common, "read_image", None), "_names_the_file", False):
        common.read_image = wrap_image_reader(_read_fastreid)
    try:
        from pycocotools.coco import COCO
    except ImportError:  # pragma: no cover - pycocotools is a pinned dependency
        return
    _wrap_coco_init(COCO)
    try:
        from lvis import LVIS
    except ImportError:  # pragma: no cover - lvis is a pinned dependency
        return
    _wrap_lvis_init(LVIS)
