"""Training and evaluation transforms, including SSCD's "advanced" copy-detection augmentations.

SSCD draws text and emoji with AugLy (Noto fonts, Twemoji images). AugLy is not a dependency here, so
the overlays are drawn by our own PIL code:

* text: 3-10 random letters/digits in DejaVuSans (Debian ``fonts-dejavu-core`` when installed, else the
  copy bundled with matplotlib), random colour, random position, font size = U(0.1, 0.3) x image height,
  opacity U(0.1, 1);
* "emoji": a procedurally drawn pictogram (smiley face, heart or star; random colours), side =
  U(0.1, 0.5) x image height, opacity U(0.7, 1), random position.

The overlays are therefore not pixel-identical to SSCD's (the SSCD authors note that even their own
open-source assets differ from the internal ones, sscd-copy-detection#5).
"""
from __future__ import annotations

import functools
import io
import math
import os
import random
import string
from typing import Callable, Sequence

from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torchvision import transforms as T

from shared.registry import get_or_raise

_DEBIAN_DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


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
    draw.arc([x0 + 0.25 * s, y0 + 0.35 * s, x1 - 0.25 * s, y1 - 0.2 * s], 20, 160, fill=(0, 0, 0, 255),
             width=max(1, s // 15))


def _draw_heart(draw: ImageDraw.ImageDraw, box, rng) -> None:
    x0, y0, x1, y1 = box
    s = x1 - x0
    colour = _random_rgb(rng) + (255,)
    draw.ellipse([x0, y0, x0 + s / 2, y0 + s / 2], fill=colour)
    draw.ellipse([x0 + s / 2, y0, x1, y0 + s / 2], fill=colour)
    draw.polygon([(x0 + s * 0.02, y0 + s * 0.32), (x1 - s * 0.02, y0 + s * 0.32), (x0 + s / 2, y1)], fill=colour)


def _draw_star(draw: ImageDraw.ImageDraw, box, rng) -> None:
    x0, y0, x1, _ = box
    r = (x1 - x0) / 2
    cx, cy = x0 + r, y0 + r
    points = [
        (cx + (r if k % 2 == 0 else 0.45 * r) * math.sin(k * math.pi / 5),
         cy - (r if k % 2 == 0 else 0.45 * r) * math.cos(k * math.pi / 5))
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
    """SSCD's ADVANCED pipeline in its order (SSCD ``sscd/transforms/settings.py``). The blur radius U(1, 5) is defined at 224 px and
    scaled by ``size / 224`` (identical at the official size, proportionate on small demo images)."""
    blur_scale = size / 224.0
    return T.Compose([
        T.RandomHorizontalFlip(),
        T.RandomApply([RandomRotate90()], p=0.05),
        T.RandomApply([OverlayText(font_path=font_path)], p=0.1),
        T.RandomApply([OverlayEmoji()], p=0.2),
        T.RandomApply([RandomRotate()], p=0.05),
        T.RandomResizedCrop(size),
        T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([RandomBlur((1.0 * blur_scale, 5.0 * blur_scale))], p=0.5),
        T.RandomApply([RandomJPEG((0, 100))], p=0.2),
        *_normalize(mean, std),
    ])


def basic_augmentation(size: int, mean, std, font_path: str = "") -> T.Compose:
    """Crop + flip + colour only (an ablation / fast option)."""
    return T.Compose([
        T.RandomResizedCrop(size),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        *_normalize(mean, std),
    ])


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
