"""Every shipped config loads and builds its loss and miner with the official defaults; bad values are refused
when the config is built (the presets against the official runs: test_das_presets.py)."""
import glob
import os

import pytest
from pytorch_metric_learning import distances, losses, miners

import das  # noqa: F401
from das.config import add_das_config
from das.modeling.losses import build_loss, build_miner

from shared.engine import build_cfg

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs")
BASE_CONFIG = os.path.join(CONFIG_DIR, "Base-DAS.yaml")
CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True))


def cfg_of(rel_path, *opts):
    return build_cfg(add_das_config, os.path.join(CONFIG_DIR, rel_path), opts)


def test_all_configs_found():
    assert len(CONFIGS) >= 28


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, CONFIG_DIR))
def test_config_loads_and_builds_loss(path):
    cfg = build_cfg(add_das_config, path)
    loss = build_loss(cfg)
    build_miner(cfg)
    assert cfg.SOLVER.IMS_PER_BATCH % cfg.DATALOADER.SAMPLES_PER_CLASS == 0
    assert cfg.MODEL.EMBEDDING.NORMALIZE == cfg.MODEL.DAS.NORMALIZE
    assert cfg.MODEL.EMBEDDING.NORMALIZE == (cfg.MODEL.LOSS.NAME not in ("lifted", "npair"))
    if os.path.basename(os.path.dirname(path)) in ("CUB200", "CARS196", "SOP", "InShop"):
        # 300 epochs, LR steps at epochs 200 and 250
        assert cfg.SOLVER.STEPS[0] == pytest.approx(cfg.SOLVER.MAX_ITER * 2 / 3, rel=0.01)
        assert cfg.SOLVER.STEPS[1] == pytest.approx(cfg.SOLVER.MAX_ITER * 5 / 6, rel=0.01)
    assert isinstance(loss, losses.BaseMetricLossFunction)


def test_loss_and_miner_defaults_match_the_official_defaults():
    cfg = cfg_of("CUB200/multi_similarity.yaml")
    ms = build_loss(cfg)
    assert (ms.alpha, ms.beta, ms.base) == (2.0, 40.0, 0.5)
    assert build_miner(cfg).epsilon == 0.1
    margin = build_loss(cfg_of("CUB200/margin_distance.yaml"))
    assert margin.learn_beta and float(margin.beta.detach()) == pytest.approx(1.2) and margin.margin == 0.2
    miner = build_miner(cfg_of("CUB200/margin_distance.yaml"))
    assert isinstance(miner, miners.DistanceWeightedMiner)
    assert (miner.cutoff, miner.nonzero_loss_cutoff) == (0.5, 1.4)
    semihard = build_miner(cfg_of("CUB200/triplet_semihard.yaml"))
    assert semihard.type_of_triplets == "semihard" and semihard.margin == 0.2
    lifted = build_loss(cfg_of("CUB200/lifted.yaml"))
    assert isinstance(lifted.distance, distances.LpDistance) and not lifted.distance.normalize_embeddings
    assert lifted.embedding_reg_weight == 0.005
    contrastive = build_loss(cfg_of("CUB200/contrastive_distance.yaml"))
    assert (contrastive.pos_margin, contrastive.neg_margin) == (0.0, 1.0)
    assert build_miner(cfg_of("CUB200/lifted.yaml")) is None


def test_unknown_names_raise_clear_errors():
    with pytest.raises(KeyError, match="MODEL.LOSS.NAME 'arcface'"):
        build_loss(build_cfg(add_das_config, BASE_CONFIG, opts=["MODEL.LOSS.NAME", "arcface"]))
    with pytest.raises(KeyError, match="MODEL.MINER.NAME 'hardest'"):
        build_miner(build_cfg(add_das_config, BASE_CONFIG, opts=["MODEL.MINER.NAME", "hardest"]))
    with pytest.raises(AssertionError, match="Non-existent key"):  # yacs rejects unknown keys
        build_cfg(add_das_config, BASE_CONFIG, opts=["MODEL.DAS.NOT_A_KEY", "1"])


@pytest.mark.parametrize(
    "name",
    [
        "triplet_semihard",
        "triplet_distance",
        "contrastive_distance",
        "margin_distance",
        "multi_similarity",
        "lifted",
        "npair",
    ],
)
def test_every_loss_runs_on_an_enlarged_batch(name):
    import torch
    import torch.nn.functional as F

    from das.modeling.producer import build_das_producer

    cfg = cfg_of(f"SOP/{name}.yaml", "MODEL.EMBEDDING.DIM", "32")
    producer = build_das_producer(cfg, num_classes=10, seed=0)
    e = torch.randn(12, 32, requires_grad=True)
    emb = F.normalize(e, dim=1) if cfg.MODEL.EMBEDDING.NORMALIZE else e
    y = torch.arange(6).repeat_interleave(2)
    enlarged, labels = producer(emb, y)
    loss_fn, miner = build_loss(cfg), build_miner(cfg)
    loss = loss_fn(enlarged, labels, miner(enlarged, labels) if miner is not None else None)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(e.grad).all()


@pytest.mark.parametrize("key, value, message", [
    ("MODEL.DAS.DFS.RANGE", "(2.0, 0.5)", "0 < low <= high"),
    ("MODEL.DAS.DFS.RANGE", "(0.0, 1.0)", "0 < low <= high"),
    ("MODEL.DAS.DFS.NUM_SCALE", "200", "cannot exceed MODEL.EMBEDDING.DIM=128"),
    ("MODEL.DAS.NUM_PRODUCE", "0", "finite number"),
    ("MODEL.DAS.MTS.SCALE", "-0.1", "finite number"),
    ("MODEL.DAS.AUX_LOSS_WEIGHT", "-1.0", "finite number"),
    ("MODEL.DAS.MTS.BANK_SIZE", "0", "finite number"),
    ("SOLVER.IMS_PER_BATCH", "111", "multiple of DATALOADER.SAMPLES_PER_CLASS=2"),
    ("DATALOADER.SAMPLER_TRAIN", "TrainingSampler", "must be one of"),
    ("INPUT.FORMAT", "RGBA", "must be one of"),
    ("TEST.RETRIEVAL.RECALL_KS", "(0, 1)", "K >= 1"),
    ("DATASETS.TEST_GALLERY", "('a', 'b')", "one gallery per DATASETS.TEST entry"),
])
def test_bad_values_are_refused_naming_the_key(key, value, message):
    from shared.engine.validation import ConfigValueError

    with pytest.raises(ConfigValueError, match=rf"^{key}=.*{message}"):
        build_cfg(add_das_config, BASE_CONFIG, opts=[key, value])


def test_adder_only_adds_keys():
    """add_das_config leaves every detectron2 default as it is (the DAS values are in Base-DAS.yaml)."""
    from detectron2.config import get_cfg

    plain, added = get_cfg(), add_das_config(get_cfg())

    def flat(node, prefix=""):
        out = {}
        for k, v in node.items():
            out.update(flat(v, f"{prefix}{k}.") if hasattr(v, "items") else {f"{prefix}{k}": v})
        return out

    before, after = flat(plain), flat(added)
    assert {k: after[k] for k in before} == before
    assert len(after) > len(before)
