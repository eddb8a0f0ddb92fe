"""A small synthetic person re-identification set in Market-1501's exact on-disk layout.

Layout written under ``root`` (what ``fastreid.data.datasets.Market1501(root=root)`` reads, unchanged)::

    root/Market-1501-v15.09.15/bounding_box_train/0001_c1s1_000151_01.jpg   training identities
    root/Market-1501-v15.09.15/query/0049_c3s1_000012_01.jpg                one image per (test id, camera)
    root/Market-1501-v15.09.15/bounding_box_test/0049_c5s1_000020_02.jpg    the other test images
    root/Market-1501-v15.09.15/bounding_box_test/0000_c2s1_000031_01.jpg    distractors (pid 0, kept)
    root/Market-1501-v15.09.15/bounding_box_test/-1_c4s1_000044_00.jpg      junk (pid -1, dropped by loaders)

File names follow Market's ``<pid:04d>_c<camera>s<sequence>_<frame:06d>_<detection:02d>.jpg`` scheme, cameras
are 1..6, training and test identities are disjoint, and every test identity is seen by at least two cameras,
so each query has a true match under the same-pid-same-camera removal of the ReID protocol.

Each image (128 x 64, like Market's crops) shows a stylised pedestrian whose identity is a combination of
learnable attributes: shirt colour (continuous hue), trouser colour, shirt pattern (plain / horizontal
stripes / vertical stripes / two-tone), hair colour, bag (none / left / right) and build. Identities share
attributes with each other (several wear similar colours), so they are not separable by one cue. Every camera
applies its own appearance shift -- per-channel colour gains, a brightness offset and a background -- and
every image gets pose, position, scale, lighting jitter, sensor noise and sometimes an occluder. Everything is
deterministic from ``seed``; a ``_meta.json`` fingerprint makes a second call with the same arguments a no-op.

**Strong intra-class variation** (``SyntheticReIDSpec.varied_id_fraction`` > 0; off by default): that share of
the identities is seen in appearances that differ a lot from image to image, the three causes the AdaSP paper
(Zhou et al., CVPR 2023, Sec. 1 and 3) names for hard positive pairs -- viewpoint, occlusion and pose /
misaligned detections. Each image of such an identity is, independently,

* seen from behind with probability ``back_view_prob``: hair covers the head, a large backpack in a colour of
  its own (drawn per identity) covers the middle of the torso, the shirt pattern (worn on the front) is not
  visible and the side bag is on the other side -- only the shirt colour at the sides, the arms, the
  trousers, the hair and the build are shared with the front view;
* heavily occluded with probability ``large_occlusion_prob``: a block covering the lower 40-55 % of the image
  (a car, a bench) or one side 45-60 % wide (a passer-by);
* badly cropped (always): the person is scaled by 0.65-1.0 and shifted by up to ``misalignment`` x the width.

These draws come from a random stream of their own, so the usual per-image draws are unchanged: identities
that are not varied render exactly as in the set without variation (same spec otherwise), and the defaults
reproduce the earlier sets bit for bit.

:func:`generate_synthetic_vehicle_release` writes the same kind of images in the release forms of the two
vehicle sets fastreid reads (the content is not vehicles; the point is the layout its parsers read):

* ``"veri"`` -- VeRi-776 as released (``VeRi/``): ``image_train/``, ``image_query/``, ``image_test/`` with
  ``<vid:04d>_c<camera:03d>_<frame:08d>_<n>.jpg``;
* ``"vehicleid"`` -- VehicleID as released (``VehicleID_V1.0/``): ``image/<image id>.jpg`` and
  ``train_test_split/{train_list.txt, test_list_{800,1600,2400,13164}.txt}`` (``<image id> <vid>`` lines).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

__all__ = ["MARKET_DIR_NAME", "SyntheticReIDSpec", "ImageVariation", "PersonStyle", "VEHICLE_RELEASE_FOLDERS",
           "generate_synthetic_market1501", "generate_synthetic_vehicle_release", "market_file_name",
           "render_person", "varied_identities"]

MARKET_DIR_NAME = "Market-1501-v15.09.15"
SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")
PATTERNS = ("plain", "hstripes", "vstripes", "twotone")
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SyntheticReIDSpec:
    """Size and difficulty of the synthetic set."""

    num_train_ids: int = 48
    num_test_ids: int = 48
    num_cameras: int = 6  # Market has 6 (camera ids 1..6 are the only ones its loader accepts)
    cameras_per_id: Tuple[int, int] = (2, 4)  # inclusive range of cameras that see an identity
    images_per_camera: Tuple[int, int] = (2, 4)  # inclusive range of images per (identity, camera)
    num_distractors: int = 16  # pid 0 images in the gallery
    num_junk: int = 8  # pid -1 images in the gallery
    height: int = 128
    width: int = 64
    camera_shift: float = 0.25  # max relative per-channel colour gain of a camera
    seed: int = 0
    # Strong intra-class variation (module docstring); the defaults add none and leave every image unchanged.
    varied_id_fraction: float = 0.0  # share of identities (train and test alike) that vary strongly
    back_view_prob: float = 0.5  # per image of a varied identity: seen from behind
    large_occlusion_prob: float = 0.3  # per image of a varied identity: a large occluder
    misalignment: float = 0.15  # per image of a varied identity: max horizontal shift / width

    def __post_init__(self):
        if not 2 <= self.num_cameras <= 6:
            raise ValueError(f"num_cameras must be in 2..6 (Market camera ids), got {self.num_cameras}")
        if self.cameras_per_id[0] < 2 or self.cameras_per_id[1] > self.num_cameras:
            raise ValueError(f"cameras_per_id {self.cameras_per_id} must lie in [2, num_cameras]")
        if self.images_per_camera[0] < 2:
            raise ValueError("images_per_camera must start at >= 2 (one query + at least one gallery image)")
        if self.num_train_ids + self.num_test_ids > 1501:
            raise ValueError("Market pids are limited to 1..1501")
        for name in ("varied_id_fraction", "back_view_prob", "large_occlusion_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.misalignment <= 0.5:
            raise ValueError(f"misalignment must be in [0, 0.5] (a shift of at most half the width), got "
                             f"{self.misalignment}")


#: the fields added for intra-class variation and their defaults: left out of the ``_meta.json`` fingerprint
#: while at their defaults, so that sets written before they existed are still recognised
_VARIATION_DEFAULTS = {"varied_id_fraction": 0.0, "back_view_prob": 0.5, "large_occlusion_prob": 0.3,
                       "misalignment": 0.15}


@dataclass(frozen=True)
class PersonStyle:
    """The identity-defining attributes of one synthetic pedestrian (colours are BGR)."""

    shirt: Tuple[int, int, int]
    accent: Tuple[int, int, int]
    trousers: Tuple[int, int, int]
    hair: Tuple[int, int, int]
    pattern: str
    bag: int  # 0 none, -1 left, +1 right
    build: float  # relative body width


@dataclass(frozen=True)
class ImageVariation:
    """How one image of a strongly varying identity departs from its usual appearance (module docstring).

    ``backpack`` is the identity's backpack colour (BGR), drawn in the back view; ``occluder`` is
    ``(x0, y0, x1, y1)`` in fractions of the image with its BGR colour, or None; ``scale`` multiplies the
    person's size and ``shift`` moves it horizontally (fraction of the width)."""

    back_view: bool = False
    backpack: Tuple[int, int, int] = (0, 0, 0)
    occluder: Optional[Tuple[Tuple[float, float, float, float], Tuple[int, int, int]]] = None
    scale: float = 1.0
    shift: float = 0.0


def market_file_name(pid: int, camera: int, sequence: int, frame: int, detection: int) -> str:
    """``0001_c1s1_000151_01.jpg``; junk images (pid -1) are named ``-1_c1s1_000151_00.jpg`` as in Market."""
    pid_text = "-1" if pid == -1 else f"{pid:04d}"
    return f"{pid_text}_c{camera}s{sequence}_{frame:06d}_{detection:02d}.jpg"


def _hsv_bgr(hue: float, sat: float, val: float) -> Tuple[int, int, int]:
    pixel = np.uint8([[[int(hue) % 180, int(np.clip(sat, 0, 255)), int(np.clip(val, 0, 255))]]])
    return tuple(int(c) for c in cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0])


def _person_styles(count: int, rng: np.random.RandomState) -> List[PersonStyle]:
    trouser_palette = [(40, 40, 40), (110, 60, 20), (170, 170, 170), (60, 90, 120), (30, 50, 90),
                       (200, 200, 220)]
    hair_palette = [(20, 20, 20), (30, 60, 110), (120, 170, 210)]
    styles = []
    for _ in range(count):
        hue = rng.uniform(0, 180)
        shirt = _hsv_bgr(hue, rng.uniform(120, 255), rng.uniform(120, 250))
        accent = _hsv_bgr(hue + rng.uniform(40, 140), rng.uniform(60, 255), rng.uniform(60, 255))
        styles.append(PersonStyle(
            shirt=shirt,
            accent=accent,
            trousers=trouser_palette[rng.randint(len(trouser_palette))],
            hair=hair_palette[rng.randint(len(hair_palette))],
            pattern=PATTERNS[rng.randint(len(PATTERNS))],
            bag=int(rng.choice([0, -1, 1])),
            build=float(rng.uniform(0.8, 1.2)),
        ))
    return styles


def _camera_looks(num_cameras: int, shift: float, rng: np.random.RandomState) -> List[Dict[str, np.ndarray]]:
    looks = []
    for _ in range(num_cameras):
        looks.append({
            "gain": rng.uniform(1.0 - shift, 1.0 + shift, size=3),
            "offset": rng.uniform(-20, 20),
            "background": rng.uniform(60, 200, size=3),
            "gradient": rng.uniform(-40, 40, size=3),
        })
    return looks


def render_person(style: PersonStyle, look: Dict[str, np.ndarray], rng: np.random.RandomState,
                  height: int = 128, width: int = 64,
                  variation: Optional[ImageVariation] = None) -> np.ndarray:
    """One BGR uint8 image of ``style`` seen by a camera with appearance ``look``, with per-image jitter;
    ``variation`` (a strongly varying identity) changes the view, the occlusion and the crop. The draws from
    ``rng`` are the same with and without it."""
    back_view = variation is not None and variation.back_view
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    background = look["background"] + ramp * look["gradient"]
    image = np.broadcast_to(background, (height, width, 3)).astype(np.float32)
    image = image + rng.normal(0, 8, size=(height, width, 3)).astype(np.float32)  # textured ground / wall

    scale = rng.uniform(0.85, 1.0) * height / 128.0
    cx = width / 2 + rng.uniform(-4, 4) * width / 64.0
    top = rng.uniform(2, 10) * height / 128.0
    if variation is not None:  # a badly cropped detection: smaller and off-centre
        scale *= variation.scale
        cx += variation.shift * width
    half_w = 13 * style.build * scale * width / 64.0 * 128.0 / height

    def y(v: float) -> int:
        return int(round(top + v * scale))

    def x(v: float) -> int:
        return int(round(cx + v))

    head_r = max(2, int(round(9 * scale)))
    head_colour = style.hair if back_view else (150, 180, 215)  # from behind: the back of the head
    cv2.ellipse(image, (x(0), y(14)), (head_r, int(head_r * 1.2)), 0, 0, 360, head_colour, -1)  # face
    cv2.ellipse(image, (x(0), y(10)), (head_r, int(head_r * 0.8)), 0, 180, 360, style.hair, -1)  # hair
    # shirt and its pattern (worn on the front: not seen from behind)
    shirt_top, shirt_bottom = y(26), y(68)
    cv2.rectangle(image, (x(-half_w), shirt_top), (x(half_w), shirt_bottom), style.shirt, -1)
    if back_view:
        pass
    elif style.pattern == "hstripes":
        for row in range(shirt_top + 3, shirt_bottom, max(4, int(8 * scale))):
            stripe = max(1, int(3 * scale))
            cv2.rectangle(image, (x(-half_w), row), (x(half_w), row + stripe), style.accent, -1)
    elif style.pattern == "vstripes":
        for col in np.arange(-half_w + 3, half_w, max(4.0, 7 * scale)):
            stripe = max(1.0, 2.5 * scale)
            cv2.rectangle(image, (x(col), shirt_top), (x(col + stripe), shirt_bottom), style.accent, -1)
    elif style.pattern == "twotone":
        cv2.rectangle(image, (x(0), shirt_top), (x(half_w), shirt_bottom), style.accent, -1)
    # arms, trousers (two legs with a pose-dependent stride), shoes
    arm_w = max(2, int(round(5 * scale)))
    for side in (-1, 1):
        ax = x(side * (half_w + arm_w / 2 + 1))
        cv2.rectangle(image, (ax - arm_w // 2, y(28)), (ax + arm_w // 2, y(62)), style.shirt, -1)
    stride = rng.uniform(0, 6) * scale
    leg_w = half_w * 0.8
    for side in (-1, 1):
        foot = side * (leg_w / 2 + stride)
        pts = np.array([[x(side * 1), y(68)], [x(side * leg_w), y(68)], [x(foot + side * leg_w / 2), y(112)],
                        [x(foot - side * leg_w / 2), y(112)]], dtype=np.int32)
        cv2.fillConvexPoly(image, pts, style.trousers)
        cv2.rectangle(image, (x(foot - leg_w / 2), y(112)), (x(foot + leg_w / 2), y(117)), (25, 25, 25), -1)
    bag = -style.bag if back_view else style.bag  # seen from behind, the bag is on the other side
    if bag:
        bx = x(bag * (half_w + 7 * scale))
        cv2.rectangle(image, (bx - int(6 * scale), y(50)), (bx + int(6 * scale), y(72)), style.accent, -1)
        cv2.line(image, (bx, y(50)), (x(-bag * half_w * 0.5), y(27)), (30, 30, 30), max(1, int(scale)))
    if back_view:  # a backpack over the middle of the back
        cv2.rectangle(image, (x(-0.65 * half_w), y(30)), (x(0.65 * half_w), y(64)), variation.backpack, -1)
    if rng.rand() < 0.2:  # a passer-by / pole partially occluding the person
        ox = int(rng.uniform(0, width - 12))
        oy = int(rng.uniform(height * 0.3, height * 0.7))
        occluder_width = int(rng.uniform(8, 20))
        cv2.rectangle(image, (ox, oy), (ox + occluder_width, height), tuple(rng.uniform(40, 200, 3)), -1)
    if variation is not None and variation.occluder is not None:
        (x0, y0, x1, y1), colour = variation.occluder
        cv2.rectangle(image, (int(round(x0 * width)), int(round(y0 * height))),
                      (int(round(x1 * width)), int(round(y1 * height))), colour, -1)

    image = image * look["gain"][None, None, :] * rng.uniform(0.9, 1.1) + look["offset"]
    image += rng.normal(0, 5, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _identity_views(rng: np.random.RandomState, spec: SyntheticReIDSpec) -> List[Tuple[int, int]]:
    """(camera, number of images) pairs of one identity."""
    num_cams = rng.randint(spec.cameras_per_id[0], spec.cameras_per_id[1] + 1)
    cameras = sorted(rng.choice(np.arange(1, spec.num_cameras + 1), size=num_cams, replace=False).tolist())
    low, high = spec.images_per_camera
    return [(cam, int(rng.randint(low, high + 1))) for cam in cameras]


def _variation_rng(spec: SyntheticReIDSpec, stream: int) -> np.random.RandomState:
    """Random streams of the intra-class variation (1: which identities, 2: per image), separate from the
    generator's main stream."""
    return np.random.RandomState([spec.seed, stream])


def varied_identities(spec: SyntheticReIDSpec) -> List[int]:
    """The person ids (1-based) that vary strongly: ``round(varied_id_fraction x count)`` of the training
    identities and as large a share of the test identities, drawn from the variation stream."""
    rng = _variation_rng(spec, 1)
    chosen = []
    for first, count in ((1, spec.num_train_ids), (spec.num_train_ids + 1, spec.num_test_ids)):
        picked = rng.permutation(count)[:int(round(spec.varied_id_fraction * count))]
        chosen += [first + int(i) for i in picked]
    return sorted(chosen)


def _draw_variation(rng: np.random.RandomState, spec: SyntheticReIDSpec,
                    backpack: Tuple[int, int, int]) -> ImageVariation:
    """One image's :class:`ImageVariation` (always the same number of draws, whatever is drawn)."""
    back_view = rng.rand() < spec.back_view_prob
    occluded, lower, left = rng.rand(3)
    start, extent = rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6)
    colour = tuple(int(c) for c in rng.uniform(30, 220, 3))
    scale, shift = rng.uniform(0.65, 1.0), rng.uniform(-spec.misalignment, spec.misalignment)
    occluder = None
    if occluded < spec.large_occlusion_prob:
        if lower < 0.5:  # a car / bench in front of the legs and part of the torso
            box = (0.0, start, 1.0, 1.0)
        else:  # a passer-by on one side
            box = (0.0, 0.0, extent, 1.0) if left < 0.5 else (1.0 - extent, 0.0, 1.0, 1.0)
        occluder = (box, colour)
    return ImageVariation(back_view=bool(back_view), backpack=backpack, occluder=occluder, scale=float(scale),
                          shift=float(shift))


def _read_meta(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_synthetic_market1501(root: str, spec: SyntheticReIDSpec = SyntheticReIDSpec(),
                                  overwrite: bool = False) -> Dict[str, object]:
    """Write the synthetic set under ``root/Market-1501-v15.09.15`` and return a summary.

    Returns a dict with ``dataset_dir``, the split directories and image counts. If the folder already holds
    a set generated with the same ``spec`` (``_meta.json``) nothing is rewritten unless ``overwrite``. A
    folder that holds something else -- e.g. the real Market-1501 -- is never touched: ``FileExistsError``.
    """
    dataset_dir = os.path.join(root, MARKET_DIR_NAME)
    meta_path = os.path.join(dataset_dir, "_meta.json")
    spec_fields = {k: v for k, v in asdict(spec).items() if _VARIATION_DEFAULTS.get(k, object()) != v}
    fingerprint = {"format_version": _FORMAT_VERSION, "spec": json.loads(json.dumps(spec_fields))}
    meta = _read_meta(meta_path)
    if meta is not None and meta.get("fingerprint") == fingerprint and not overwrite:
        return meta["summary"]
    if os.path.isdir(dataset_dir) and meta is None and os.listdir(dataset_dir):
        raise FileExistsError(f"{dataset_dir} exists and was not written by this generator (no _meta.json); "
                              "refusing to overwrite it -- pick another root")
    for split in SPLIT_DIRS:
        shutil.rmtree(os.path.join(dataset_dir, split), ignore_errors=True)
        os.makedirs(os.path.join(dataset_dir, split))

    rng = np.random.RandomState(spec.seed)
    looks = _camera_looks(spec.num_cameras, spec.camera_shift, rng)
    styles = _person_styles(spec.num_train_ids + spec.num_test_ids, rng)
    distractor_styles = _person_styles(spec.num_distractors, rng)
    counts = {split: 0 for split in SPLIT_DIRS}
    frame = 0

    def write(split: str, pid: int, camera: int, detection: int, image: np.ndarray) -> None:
        nonlocal frame
        frame += int(rng.randint(1, 40))
        name = market_file_name(pid, camera, 1 + frame % 6, frame, detection)
        cv2.imwrite(os.path.join(dataset_dir, split, name), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        counts[split] += 1

    varied = set(varied_identities(spec)) if spec.varied_id_fraction > 0 else set()
    variation_rng = _variation_rng(spec, 2)
    for index in range(spec.num_train_ids + spec.num_test_ids):
        pid = index + 1
        is_train = index < spec.num_train_ids
        backpack = tuple(int(c) for c in variation_rng.uniform(30, 230, 3)) if pid in varied else None
        for camera, num_images in _identity_views(rng, spec):
            for k in range(num_images):
                variation = _draw_variation(variation_rng, spec, backpack) if backpack else None
                image = render_person(styles[index], looks[camera - 1], rng, spec.height, spec.width,
                                      variation)
                split = "bounding_box_train" if is_train else ("query" if k == 0 else "bounding_box_test")
                write(split, pid, camera, k + 1, image)
    for k, style in enumerate(distractor_styles):
        camera = int(rng.randint(1, spec.num_cameras + 1))
        image = render_person(style, looks[camera - 1], rng, spec.height, spec.width)
        write("bounding_box_test", 0, camera, 1, image)
    for k in range(spec.num_junk):  # junk: background-only crops
        camera = int(rng.randint(1, spec.num_cameras + 1))
        look = looks[camera - 1]
        noise = rng.normal(0, 20, (spec.height, spec.width, 3))
        junk = np.clip(look["background"] * look["gain"] + noise, 0, 255)
        write("bounding_box_test", -1, camera, 0, junk.astype(np.uint8))

    summary = {"dataset_dir": dataset_dir,
               **{f"{split}_dir": os.path.join(dataset_dir, split) for split in SPLIT_DIRS},
               "num_images": dict(counts),
               "num_train_ids": spec.num_train_ids, "num_test_ids": spec.num_test_ids}
    if varied:
        summary["varied_pids"] = sorted(varied)
    with open(meta_path, "w") as f:
        json.dump({"fingerprint": fingerprint, "summary": summary}, f, indent=1)
    return summary


#: layout -> the folder name of the release (fastreid's own loaders read the lower-case renames)
VEHICLE_RELEASE_FOLDERS = {"veri": "VeRi", "vehicleid": "VehicleID_V1.0"}
#: VehicleID's released test lists (fastreid's Small/Medium/Large read 800/1600/2400)
_VEHICLEID_LISTS = tuple(f"test_list_{n}.txt" for n in (800, 1600, 2400, 13164))


def generate_synthetic_vehicle_release(root: str, layout: str, spec: SyntheticReIDSpec = SyntheticReIDSpec(),
                                       folder: str = "") -> str:
    """Write a small set in the release form ``layout`` (``"veri"`` or ``"vehicleid"``, module docstring)
    under ``root/<folder>`` (default: the release's folder name); returns that folder. Training and test
    identities are disjoint; every test identity has at least two images (VeRi: one query, the rest
    gallery)."""
    if layout not in VEHICLE_RELEASE_FOLDERS:
        raise ValueError(f"layout must be one of {sorted(VEHICLE_RELEASE_FOLDERS)}, got {layout!r}")
    base = os.path.join(root, folder or VEHICLE_RELEASE_FOLDERS[layout])
    shutil.rmtree(base, ignore_errors=True)
    rng = np.random.RandomState(spec.seed)
    looks = _camera_looks(spec.num_cameras, spec.camera_shift, rng)
    styles = _person_styles(spec.num_train_ids + spec.num_test_ids, rng)
    lists: Dict[str, List[str]] = {"train": [], "test": []}
    for index, style in enumerate(styles):
        vid, is_train = index + 1, index < spec.num_train_ids
        for c, (camera, num_images) in enumerate(_identity_views(rng, spec)):
            for k in range(num_images):
                image = render_person(style, looks[camera - 1], rng, spec.height, spec.width)
                if layout == "veri":
                    split = "image_train" if is_train else ("image_query" if c == k == 0 else "image_test")
                    name = f"{vid:04d}_c{camera:03d}_{int(rng.randint(1, 10 ** 7)):08d}_{k}.jpg"
                    path = os.path.join(base, split, name)
                else:
                    image_id = f"{len(lists['train']) + len(lists['test']) + 1:08d}"
                    lists["train" if is_train else "test"].append(f"{image_id} {vid}")
                    path = os.path.join(base, "image", f"{image_id}.jpg")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if layout == "vehicleid":
        split_dir = os.path.join(base, "train_test_split")
        os.makedirs(split_dir)
        files = [("train_list.txt", lists["train"])] + [(t, lists["test"]) for t in _VEHICLEID_LISTS]
        for name, lines in files:
            with open(os.path.join(split_dir, name), "w") as f:
                f.write("\n".join(lines) + "\n")
    return base
