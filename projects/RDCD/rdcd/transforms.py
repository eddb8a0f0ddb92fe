"""Training and evaluation transforms, including SSCD's "advanced" copy-detection augmentations.

SSCD draws its text and emoji overlays from AugLy's asset folders (SSCD ``sscd/transforms/overlay_text.py``,
``overlay_emoji.py``). With AugLy installed (its core only: ``pip install augly python-magic``; ``make setup``
does it), :class:`AugLyTextOverlay` and :class:`AugLyEmojiOverlay` follow SSCD's sampling:

* text: a random font among AugLy's 364 (``augly/assets/fonts/*.ttf``), characters drawn from that font's own
  character set (the ``.pkl`` list of code points beside each font), font size = U(0.1, 0.3) x min(W, H), a
  length U{1, ..., L} where L is the longest prefix of a 100-character string that fits in the image, colour
  uniform in [0, 255]^3, opacity U(0.1, 1), top-left corner at (U(0, 1) (W - w), U(0, 1) (H - h));
* emoji: one of AugLy's 872 Twemoji PNGs (``augly/assets/twemojis/*/*.png``), scaled to U(0.1, 0.5) times the
  largest scale that fits, opacity U(0.7, 1) applied to its alpha, placed like the text.

Without AugLy the overlays fall back to our own PIL drawings (logged once): 3-10 Latin letters/digits in
DejaVuSans and procedural pictograms (smiley, heart, star). Neither is pixel-identical to SSCD's internal
assets (the SSCD authors note their open-source assets differ too, sscd-copy-detection#5).
"""

from __future__ import annotations

import functools
import glob
import io
import logging
import math
import os
import pickle
import random
import string
from typing import Callable, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torchvision import transforms as T

from shared.registry import get_or_raise

logger = logging.getLogger(__name__)

_DEBIAN_DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@functools.lru_cache(maxsize=1)
def augly_asset_dirs() -> Optional[Tuple[str, str]]:
    """``(fonts folder, emoji folder)`` of the installed AugLy, or ``None`` (logged once) without it.
    Importing AugLy draws from Python's global random generator; its state is restored, so a seeded run does
    not depend on whether this is the first call in the process."""
    state = random.getstate()
    try:
        from augly.utils import EMOJI_DIR, FONTS_DIR
    except ImportError as exc:
        logger.warning(
            "AugLy is not installed (%s): text and emoji overlays use our own fallback drawings, "
            "not SSCD's fonts and Twemoji (pip install augly==1.0.0 python-magic)",
            exc,
        )
        return None
    finally:
        random.setstate(state)
    return FONTS_DIR, EMOJI_DIR


class _CodePointsOnly(pickle.Unpickler):
    """AugLy's per-font ``.pkl`` files hold a plain list of code points; nothing else is accepted."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a font character-set file")


@functools.lru_cache(maxsize=None)
def _font_repository(folder: str) -> List[Tuple[str, Tuple[int, ...]]]:
    """``(ttf path, code points)`` of every font in ``folder`` that has its character-set ``.pkl``."""
    fonts = []
    for ttf in sorted(glob.glob(os.path.join(folder, "*.ttf"))):
        charset = os.path.splitext(ttf)[0] + ".pkl"
        if os.path.exists(charset):
            with open(charset, "rb") as f:
                codes = tuple(int(c) for c in _CodePointsOnly(f).load())
            if codes:
                fonts.append((ttf, codes))
    if not fonts:
        raise FileNotFoundError(f"no fonts with a character set (*.ttf + *.pkl) in {folder!r}")
    return fonts


@functools.lru_cache(maxsize=None)
def _emoji_paths(folder: str) -> List[str]:
    paths = sorted(glob.glob(os.path.join(folder, "*", "*.png")))
    if not paths:
        raise FileNotFoundError(f"no emoji images (*/*.png) in {folder!r}")
    return paths


@functools.lru_cache(maxsize=256)
def _emoji_image(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGBA")


class AugLyTextOverlay:
    """SSCD's text overlay on AugLy's fonts (sampling in the module docstring)."""

    #: length of the candidate string whose longest fitting prefix bounds the text length (SSCD: 100)
    max_chars = 100

    def __init__(self, fonts_dir: str, font_size=(0.1, 0.3), opacity=(0.1, 1.0), rng=None):
        self.fonts = _font_repository(fonts_dir)
        self.font_size, self.opacity = font_size, opacity
        self.rng = rng or random

    @staticmethod
    def _size(font: ImageFont.FreeTypeFont, text: str) -> Tuple[int, int]:
        left, top, right, bottom = font.getbbox(text)
        return right, bottom

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = self.rng
        path, codes = rng.choice(self.fonts)
        size = max(1, int(min(image.size) * rng.uniform(*self.font_size)))
        text = "".join(chr(c) for c in rng.choices(codes, k=self.max_chars))
        try:
            font = _font(path, size)

            def fits(n: int) -> bool:
                width, height = self._size(font, text[:n])
                return width <= image.width and height <= image.height

            low, high = 0, len(text)  # the longest fitting prefix (width and height grow with the prefix)
            while low < high:
                mid = (low + high + 1) // 2
                low, high = (mid, high) if fits(mid) else (low, mid - 1)
            if low == 0:
                return image
            text = text[: rng.randint(1, low)]
            width, height = self._size(font, text)
            xy = (rng.uniform(0, 1) * (image.width - width), rng.uniform(0, 1) * (image.height - height))
            alpha = int(rng.uniform(*self.opacity) * 255 + 0.5)
            colour = tuple(rng.randint(0, 255) for _ in range(3))
            layer = Image.new("RGBA", image.size, (255, 255, 255, 0))
            ImageDraw.Draw(layer).text(xy, text, fill=colour + (alpha,), font=font)
        except (OSError, RuntimeError, ValueError) as exc:
            # a glyph of the font's character set the font engine cannot lay out (FreeType "invalid composite
            # glyph", raqm_layout() failed): no overlay, as SSCD does
            logger.debug("text overlay skipped (%s, %s)", os.path.basename(path), exc)
            return image
        return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


class AugLyEmojiOverlay:
    """SSCD's emoji overlay on AugLy's Twemoji images (sampling in the module docstring)."""

    def __init__(self, emoji_dir: str, emoji_size=(0.1, 0.5), opacity=(0.7, 1.0), rng=None):
        self.paths = _emoji_paths(emoji_dir)
        self.emoji_size, self.opacity = emoji_size, opacity
        self.rng = rng or random

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = self.rng
        emoji = _emoji_image(rng.choice(self.paths))
        scale = min(image.width / emoji.width, image.height / emoji.height) * rng.uniform(*self.emoji_size)
        size = (max(1, int(emoji.width * scale)), max(1, int(emoji.height * scale)))
        emoji = emoji.resize(size, resample=Image.BILINEAR)
        x = int(rng.uniform(0, 1) * (image.width - emoji.width))
        y = int(rng.uniform(0, 1) * (image.height - emoji.height))
        opacity = rng.uniform(*self.opacity)
        mask = emoji.getchannel("A").point(lambda a: int(a * opacity))
        out = image.convert("RGBA")
        out.paste(emoji, (x, y), mask=mask)
        return out.convert("RGB")


def build_overlays(font_path: str = "") -> Tuple[Callable, Callable]:
    """(text overlay, emoji overlay): SSCD's on AugLy's assets when AugLy is installed and no ``font_path``
    (``INPUT.COPY_DETECTION.FONT``) is forced; otherwise our fallback drawings."""
    dirs = augly_asset_dirs()
    if dirs is None or font_path:
        return OverlayText(font_path=font_path), OverlayEmoji()
    return AugLyTextOverlay(dirs[0]), AugLyEmojiOverlay(dirs[1])


def default_font_path() -> str:
    """DejaVuSans from the Debian package if installed, else the copy bundled with matplotlib."""
    if os.path.exists(_DEBIAN_DEJAVU):
        return _DEBIAN_DEJAVU
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=True)


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _composite(image: Image.Image, layer: Image.Image, opacity: float) -> Image.Image:
    """Alpha-blend an RGBA ``layer`` over ``image`` with its alpha scaled by ``opacity``."""
    alpha = layer.getchannel("A").point(lambda a: int(a * opacity))
    layer.putalpha(alpha)
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _random_rgb(rng: random.Random) -> tuple:
    return tuple(rng.randrange(256) for _ in range(3))


class OverlayText:
    """Draw a random string; font size and opacity are drawn uniformly from the given ranges."""

    def __init__(self, font_size=(0.1, 0.3), opacity=(0.1, 1.0), font_path: str = "", rng=None):
        self.font_size, self.opacity = font_size, opacity
        self.font_path = font_path or default_font_path()
        self.rng = rng or random

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = self.rng
        width, height = image.size
        size = max(6, int(rng.uniform(*self.font_size) * height))
        text = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(3, 10)))
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        xy = (rng.randint(0, max(0, width // 2)), rng.randint(0, max(0, height - size)))
        ImageDraw.Draw(layer).text(xy, text, font=_font(self.font_path, size), fill=_random_rgb(rng) + (255,))
        return _composite(image, layer, rng.uniform(*self.opacity))


def _draw_smiley(draw: ImageDraw.ImageDraw, box, rng) -> None:
    x0, y0, x1, y1 = box
    s = x1 - x0
    draw.ellipse(box, fill=_random_rgb(rng) + (255,), outline=(0, 0, 0, 255), width=max(1, s // 20))
    eye = max(1, s // 10)
    for cx in (x0 + 0.33 * s, x0 + 0.67 * s):
        draw.ellipse([cx - eye, y0 + 0.35 * s - eye, cx + eye, y0 + 0.35 * s + eye], fill=(0, 0, 0, 255))
    draw.arc(
        [x0 + 0.25 * s, y0 + 0.35 * s, x1 - 0.25 * s, y1 - 0.2 * s],
        20,
        160,
        fill=(0, 0, 0, 255),
        width=max(1, s // 15),
    )


def _draw_heart(draw: ImageDraw.ImageDraw, box, rng) -> None:
    x0, y0, x1, y1 = box
    s = x1 - x0
    colour = _random_rgb(rng) + (255,)
    draw.ellipse([x0, y0, x0 + s / 2, y0 + s / 2], fill=colour)
    draw.ellipse([x0 + s / 2, y0, x1, y0 + s / 2], fill=colour)
    draw.polygon(
        [(x0 + s * 0.02, y0 + s * 0.32), (x1 - s * 0.02, y0 + s * 0.32), (x0 + s / 2, y1)], fill=colour
    )


def _draw_star(draw: ImageDraw.ImageDraw, box, rng) -> None:
    x0, y0, x1, _ = box
    r = (x1 - x0) / 2
    cx, cy = x0 + r, y0 + r
    points = [
        (
            cx + (r if k % 2 == 0 else 0.45 * r) * math.sin(k * math.pi / 5),
            cy - (r if k % 2 == 0 else 0.45 * r) * math.cos(k * math.pi / 5),
        )
        for k in range(10)
    ]
    draw.polygon(points, fill=_random_rgb(rng) + (255,), outline=(0, 0, 0, 255))


_PICTOGRAMS: Sequence[Callable] = (_draw_smiley, _draw_heart, _draw_star)


class OverlayEmoji:
    """Paste a procedurally drawn pictogram (stand-in for AugLy's Twemoji) at a random position."""

    def __init__(self, emoji_size=(0.1, 0.5), opacity=(0.7, 1.0), rng=None):
        self.emoji_size, self.opacity = emoji_size, opacity
        self.rng = rng or random

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = self.rng
        width, height = image.size
        side = max(4, int(rng.uniform(*self.emoji_size) * height))
        x0, y0 = rng.randint(0, max(0, width - side)), rng.randint(0, max(0, height - side))
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        rng.choice(_PICTOGRAMS)(ImageDraw.Draw(layer), (x0, y0, x0 + side, y0 + side), rng)
        return _composite(image, layer, rng.uniform(*self.opacity))


class RandomRotate90:
    """Rotate by 90, 180 or 270 degrees (uniformly)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.rotate(90 * random.randint(1, 3), expand=True)


class RandomRotate:
    """Rotate by an angle drawn uniformly from [0, 359] degrees, expanding the canvas."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.rotate(random.uniform(0, 359), expand=True)


class RandomBlur:
    """Gaussian blur with radius U(low, high) (pixels)."""

    def __init__(self, radius=(1.0, 5.0)):
        self.radius = radius

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(random.uniform(*self.radius)))


class RandomJPEG:
    """Re-encode as JPEG with quality drawn uniformly from [low, high]."""

    def __init__(self, quality=(0, 100)):
        self.quality = quality

    def __call__(self, image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=random.randint(*self.quality))
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")


def _normalize(mean, std) -> list:
    return [T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))]


def advanced_augmentation(size: int, mean, std, font_path: str = "") -> T.Compose:
    """SSCD's ADVANCED pipeline in its order (SSCD ``sscd/transforms/settings.py``). The blur radius U(1, 5)
    is defined at 224 px and
    scaled by ``size / 224`` (identical at the official size, proportionate on small demo images)."""
    blur_scale = size / 224.0
    text_overlay, emoji_overlay = build_overlays(font_path)
    return T.Compose(
        [
            T.RandomHorizontalFlip(),
            T.RandomApply([RandomRotate90()], p=0.05),
            T.RandomApply([text_overlay], p=0.1),
            T.RandomApply([emoji_overlay], p=0.2),
            T.RandomApply([RandomRotate()], p=0.05),
            T.RandomResizedCrop(size),
            T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([RandomBlur((1.0 * blur_scale, 5.0 * blur_scale))], p=0.5),
            T.RandomApply([RandomJPEG((0, 100))], p=0.2),
            *_normalize(mean, std),
        ]
    )


def basic_augmentation(size: int, mean, std, font_path: str = "") -> T.Compose:
    """Crop + flip + colour only (an ablation / fast option)."""
    return T.Compose(
        [
            T.RandomResizedCrop(size),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            *_normalize(mean, std),
        ]
    )


#: INPUT.COPY_DETECTION.AUGMENTATION -> pipeline builder
AUGMENTATIONS = {"advanced": advanced_augmentation, "basic": basic_augmentation}
#: INPUT.COPY_DETECTION.TEST_RESIZE -> torchvision ``Resize`` size argument from TEST_SIZE
TEST_RESIZE = {"square": lambda side: (side, side), "short_side": lambda side: side}


def build_train_transform(cfg) -> T.Compose:
    """``INPUT.COPY_DETECTION.AUGMENTATION`` pipeline at ``TRAIN_SIZE``; unknown names raise ``KeyError``."""
    c = cfg.INPUT.COPY_DETECTION
    build = get_or_raise(AUGMENTATIONS, c.AUGMENTATION, "INPUT.COPY_DETECTION.AUGMENTATION")
    return build(c.TRAIN_SIZE, c.MEAN, c.STD, c.FONT)


def build_test_transform(cfg) -> T.Compose:
    """Resize to TEST_SIZE x TEST_SIZE ("square", RDCD) or short side to TEST_SIZE ("short_side", SSCD)."""
    c = cfg.INPUT.COPY_DETECTION
    size = get_or_raise(TEST_RESIZE, c.TEST_RESIZE, "INPUT.COPY_DETECTION.TEST_RESIZE")(c.TEST_SIZE)
    return T.Compose([T.Resize(size), *_normalize(c.MEAN, c.STD)])
