"""Synthetic DISC21-style generator, ground-truth CSV parsing, dataset registry errors, augmentations."""

import os

import rdcd  # noqa: F401
import numpy as np
import pytest
import torch
from PIL import Image

from rdcd.config import BASE_CONFIG, add_rdcd_config
from shared.engine import build_cfg
from rdcd.datasets import get_copy_detection_dataset
from rdcd.transforms import build_test_transform, build_train_transform
from rdcd.transforms import OverlayEmoji, OverlayText, default_font_path
from shared.datasets.synthetic_copy_detection import (
    LAYOUTS,
    generate_synthetic_copy_detection,
    read_ground_truth_csv,
)

SMALL = dict(num_references=6, num_matching_queries=3, num_distractor_queries=2, num_train=4, image_size=32)


@pytest.mark.parametrize("layout", ["rdcd", "sscd"])
def test_generator_layout_counts_and_determinism(tmp_path, layout):
    a = generate_synthetic_copy_detection(str(tmp_path / "a"), layout=layout, **SMALL)
    b = generate_synthetic_copy_detection(str(tmp_path / "b"), layout=layout, **SMALL)
    folders = LAYOUTS[layout]
    assert sorted(os.listdir(tmp_path / "a" / folders.references)) == [f"R{i:06d}.jpg" for i in range(6)]
    assert len(os.listdir(tmp_path / "a" / folders.queries)) == 5
    assert len(os.listdir(tmp_path / "a" / folders.train)) == 4
    rows = read_ground_truth_csv(str(tmp_path / "a" / folders.ground_truth))
    assert rows == a.ground_truth == b.ground_truth
    assert sum(1 for _, ref in rows if ref) == 3 and len({ref for _, ref in rows if ref}) == 3
    for name in ("Q00000.jpg", "Q00004.jpg"):
        pa = np.asarray(Image.open(tmp_path / "a" / folders.queries / name))
        pb = np.asarray(Image.open(tmp_path / "b" / folders.queries / name))
        assert np.array_equal(pa, pb)
    # idempotent: a second call reuses the files
    stamp = os.path.getmtime(tmp_path / "a" / folders.ground_truth)
    again = generate_synthetic_copy_detection(str(tmp_path / "a"), layout=layout, **SMALL)
    assert again.ground_truth == a.ground_truth
    assert os.path.getmtime(tmp_path / "a" / folders.ground_truth) == stamp


def test_generator_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        generate_synthetic_copy_detection(str(tmp_path), layout="isc", **SMALL)
    with pytest.raises(ValueError, match="num_matching_queries"):
        generate_synthetic_copy_detection(str(tmp_path), num_references=2, num_matching_queries=3)


@pytest.mark.parametrize(
    "content, message",
    [
        ("query,reference\nQ1,R1\n", "header"),
        ("", "header"),
        ("query_id,reference_id\nQ1,R1,R2\n", "line 2"),
        ("query_id,reference_id\nQ1,R1\n,R2\n", "line 3"),
    ],
)
def test_malformed_ground_truth_csv_is_named(tmp_path, content, message):
    path = tmp_path / "gt.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_ground_truth_csv(str(path))
    assert "gt.csv" in str(info.value)


def test_ground_truth_csv_keeps_unmatched_queries(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\nQ00000,R000003\nQ00001,\n")
    assert read_ground_truth_csv(str(path)) == [("Q00000", "R000003"), ("Q00001", "")]


def test_missing_dataset_names_env_var_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    with pytest.raises(FileNotFoundError, match="DETECTRON2_DATASETS"):
        get_copy_detection_dataset("disc21", cfg)
    with pytest.raises(KeyError, match="copydays"):
        get_copy_detection_dataset("copydays", cfg)


def test_synthetic_dataset_is_generated_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    s = cfg.DATASETS.SYNTHETIC_COPY_DETECTION
    s.NUM_REFERENCES, s.NUM_MATCHING_QUERIES, s.NUM_DISTRACTOR_QUERIES, s.NUM_TRAIN, s.IMAGE_SIZE = (
        4,
        2,
        1,
        3,
        32,
    )
    split = get_copy_detection_dataset("synthetic_disc21", cfg)
    assert [i for i, _ in split.images("references")] == ["R000000", "R000001", "R000002", "R000003"]
    assert len(split.images("train")) == 3 and len(split.ground_truth()) == 3


def test_overlays_draw_inside_the_image_and_respect_opacity():
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    assert os.path.exists(default_font_path())
    transparent = OverlayText(opacity=(0.0, 0.0))(image.copy())
    assert np.array_equal(np.asarray(transparent), np.asarray(image))
    texted = OverlayText(font_size=(0.3, 0.3), opacity=(1.0, 1.0))(image.copy())
    assert (np.asarray(texted) != 128).any()
    emoji = OverlayEmoji(emoji_size=(0.5, 0.5), opacity=(1.0, 1.0))(image.copy())
    changed = (np.asarray(emoji) != 128).any(axis=2)
    assert changed.any() and changed.sum() <= 32 * 32  # only inside the 32x32 pictogram box


def test_train_and_test_transforms_shapes():
    cfg = build_cfg(add_rdcd_config, BASE_CONFIG)
    cfg.INPUT.COPY_DETECTION.TRAIN_SIZE = 48
    cfg.INPUT.COPY_DETECTION.TEST_SIZE = 40
    image = Image.new("RGB", (80, 60), (10, 200, 30))
    torch.manual_seed(0)
    for _ in range(5):
        assert build_train_transform(cfg)(image).shape == (3, 48, 48)
    assert build_test_transform(cfg)(image).shape == (3, 40, 40)
    cfg.INPUT.COPY_DETECTION.TEST_RESIZE = "short_side"
    assert build_test_transform(cfg)(image).shape == (3, 40, 53)
    cfg.INPUT.COPY_DETECTION.AUGMENTATION = "fancy"
    with pytest.raises(KeyError, match="fancy"):
        build_train_transform(cfg)


def test_augly_overlays_follow_sscd_sampling():
    """With AugLy installed: SSCD's assets (364 fonts with character sets, 872 Twemoji), text and emoji inside
    the image, full transparency leaves it unchanged."""
    from rdcd.transforms import AugLyEmojiOverlay, AugLyTextOverlay, augly_asset_dirs, build_overlays

    pytest.importorskip("augly")
    fonts_dir, emoji_dir = augly_asset_dirs()
    text, emoji = build_overlays("")
    assert isinstance(text, AugLyTextOverlay) and isinstance(emoji, AugLyEmojiOverlay)
    assert len(text.fonts) == 364 and len(emoji.paths) == 872
    assert all(len(codes) > 0 for _, codes in text.fonts)
    image = Image.new("RGB", (96, 64), (128, 128, 128))
    rng = __import__("random").Random(0)
    changed_any = False
    for _ in range(10):
        out = AugLyTextOverlay(fonts_dir, opacity=(1.0, 1.0), rng=rng)(image)
        assert out.size == image.size
        changed_any |= bool((np.asarray(out) != 128).any())
    assert changed_any
    assert np.array_equal(
        np.asarray(AugLyTextOverlay(fonts_dir, opacity=(0.0, 0.0), rng=rng)(image)), np.asarray(image)
    )
    big = AugLyEmojiOverlay(emoji_dir, emoji_size=(1.0, 1.0), opacity=(1.0, 1.0), rng=rng)(image)
    assert (np.asarray(big) != 128).any(axis=2).sum() > 0.1 * 64 * 64  # scaled to fit the image
    assert isinstance(build_overlays("/some/font.ttf")[0], OverlayText)  # a forced font: fallback drawings


def test_missing_augly_falls_back_and_logs_once(monkeypatch, caplog):
    import builtins

    from rdcd import transforms

    real_import = builtins.__import__

    def no_augly(name, *args, **kwargs):
        if name.startswith("augly"):
            raise ImportError("No module named 'augly'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_augly)
    transforms.augly_asset_dirs.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="rdcd.transforms"):
            first, second = transforms.build_overlays(""), transforms.build_overlays("")
        assert isinstance(first[0], OverlayText) and isinstance(second[1], OverlayEmoji)
        assert sum("AugLy is not installed" in r.getMessage() for r in caplog.records) == 1
    finally:
        transforms.augly_asset_dirs.cache_clear()


def test_text_overlay_skips_text_the_font_engine_cannot_lay_out(monkeypatch):
    """Some AugLy font / character pairs make Pillow raise (raqm_layout() failed, invalid composite glyph):
    the image is returned unchanged instead of killing the data loader (SSCD skips such text too)."""
    from PIL import ImageFont

    from rdcd.transforms import AugLyTextOverlay, augly_asset_dirs

    pytest.importorskip("augly")

    def broken(self, *args, **kwargs):
        raise RuntimeError("raqm_layout() failed.")

    monkeypatch.setattr(ImageFont.FreeTypeFont, "getbbox", broken)
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    out = AugLyTextOverlay(augly_asset_dirs()[0], opacity=(1.0, 1.0))(image)
    assert np.array_equal(np.asarray(out), np.asarray(image))
