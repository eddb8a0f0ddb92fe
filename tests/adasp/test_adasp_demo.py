"""`make demo-adasp`: the seed study of AdaSP against SP-H and batch-hard triplet on strongly varying
identities.

One run is reproducible (the trainer seeds every generator with SEED before the model and the loader are
built); the regime the demo claims is the one it builds (half of the identities vary strongly, the others are
rendered exactly as without variation, the defaults reproduce the earlier sets, the three configs differ only
in the loss); and (slow) the whole pipeline runs end to end at the reduced size as `make demo-adasp` starts
it."""

import hashlib
import json
import os

import numpy as np
import pytest

from shared.datasets.synthetic_reid import (MARKET_DIR_NAME, SyntheticReIDSpec, generate_synthetic_market1501,
                                            varied_identities)
from shared.engine.demo_stats import RunResult, StudyJob
from shared.engine.provenance import load_module_file

DEMO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "projects", "AdaSP", "demo.py"))
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _load_demo():
    return load_module_file(DEMO, "adasp_demo")


def _files(dataset_dir: str):
    """{split/name: bytes} of a generated set."""
    return {f"{split}/{name}": open(os.path.join(dataset_dir, split, name), "rb").read()
            for split in SPLITS for name in sorted(os.listdir(os.path.join(dataset_dir, split)))}


@pytest.fixture(scope="module")
def demo_datasets(tmp_path_factory):
    return str(tmp_path_factory.mktemp("demo_datasets"))


def _losses(output_dir: str):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [row["total_loss"] for row in map(json.loads, f) if "total_loss" in row]


def test_demo_worker_is_deterministic(demo_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", demo_datasets)
    demo = _load_demo()
    demo.demo_data(quick=True)
    runs = []
    for i, method in enumerate(("AdaSP", "AdaSP", "SP-H")):
        out = str(tmp_path / f"run{i}")
        reported = []
        job = StudyJob(method, 3, 8, {"output_dir": out, "data_root": demo.data_root(True), "epochs": 2,
                                      "eval_epochs": 2, "opts": ["SOLVER.WARMUP_ITERS", "4"]})
        result = demo.run_one(job, reported.append)
        runs.append((_losses(out), result.metrics, result.curve))
    assert runs[0][0] and runs[0][0] == runs[1][0]  # identical training losses, bit for bit
    assert json.dumps(runs[0][1]) == json.dumps(runs[1][1]) and list(runs[0][1]) == ["mAP", "R1", "mINP"]
    assert [it for it, _ in runs[0][2]] == [8]  # the final evaluation closes the learning curve
    assert runs[2][0] != runs[0][0]  # the loss type reaches the run (SP-H vs AdaSP, same seed)
    assert os.environ["FASTREID_DATASETS"] == demo_datasets  # the demo's root was set only inside the run


def test_default_spec_reproduces_the_earlier_sets(tmp_path):
    """The variation fields are additive: with their defaults the generator writes the bytes it wrote before
    they existed (sha256 of this small set computed with the generator of release 0.3.0)."""
    spec = SyntheticReIDSpec(num_train_ids=3, num_test_ids=2, num_distractors=1, num_junk=1, seed=11)
    summary = generate_synthetic_market1501(str(tmp_path), spec)
    digest = hashlib.sha256()
    for name, data in _files(summary["dataset_dir"]).items():
        digest.update(name.split("/")[1].encode())
        digest.update(data)
    assert digest.hexdigest() == "0067100bddf2c2a655b64b322785eaf465041cad371e014409126216a58119a9"
    assert "varied_pids" not in summary
    with open(os.path.join(summary["dataset_dir"], "_meta.json")) as f:
        assert "varied_id_fraction" not in json.load(f)["fingerprint"]["spec"]  # earlier sets still match


def test_varied_identities_vary_and_the_others_are_unchanged(tmp_path):
    base = SyntheticReIDSpec(num_train_ids=8, num_test_ids=4, num_distractors=1, num_junk=1, seed=4)
    varied_spec = SyntheticReIDSpec(**{**base.__dict__, "varied_id_fraction": 0.5})
    plain = generate_synthetic_market1501(str(tmp_path / "plain"), base)
    varied = generate_synthetic_market1501(str(tmp_path / "varied"), varied_spec)
    pids = varied["varied_pids"]
    assert pids == varied_identities(varied_spec)
    assert [p <= 8 for p in pids].count(True) == 4 and len(pids) == 6  # half of each split
    plain_files, varied_files = _files(plain["dataset_dir"]), _files(varied["dataset_dir"])
    assert plain_files.keys() == varied_files.keys()  # same identities, cameras and file names
    pid_of = {name: int(name.split("/")[1].split("_")[0]) for name in plain_files}
    same = [plain_files[n] == varied_files[n] for n in plain_files]
    assert all(s for n, s in zip(plain_files, same) if pid_of[n] not in pids)  # bit for bit
    assert not any(s for n, s in zip(plain_files, same) if pid_of[n] in pids)  # every image changed


def test_varied_identities_have_a_much_larger_intra_class_spread(demo_datasets, monkeypatch):
    """The regime: on the demo's (quick) training split, the torso region (where the shirt pattern, the
    backpack of the back view and the large occluders act) of a varied identity's images lies much farther
    from its class mean than that of a regular identity: every varied identity spreads more than every regular
    one (8x8 colour thumbnails of the crop, brightness removed, unit norm; measured: varied >= 0.75, regular
    <= 0.61, means 0.82 vs 0.46)."""
    import cv2

    monkeypatch.setenv("FASTREID_DATASETS", demo_datasets)
    demo = _load_demo()
    summary = demo.demo_data(quick=True)
    train_dir = summary["bounding_box_train_dir"]
    images = {}
    for name in sorted(os.listdir(train_dir)):
        torso = cv2.imread(os.path.join(train_dir, name)).astype(np.float32)[30:70, 16:48]
        vector = cv2.resize(torso, (8, 8), interpolation=cv2.INTER_AREA).ravel()
        vector -= vector.mean()
        images.setdefault(int(name.split("_")[0]), []).append(vector / np.linalg.norm(vector))
    spread = {pid: np.mean(np.linalg.norm(np.array(v) - np.mean(v, axis=0), axis=1))
              for pid, v in images.items()}
    varied = set(summary["varied_pids"])
    assert len(varied & set(images)) == len(images) // 2 == 8
    varied_spread = [s for p, s in spread.items() if p in varied]
    other_spread = [s for p, s in spread.items() if p not in varied]
    assert min(varied_spread) > max(other_spread)
    assert np.mean(varied_spread) > 1.5 * np.mean(other_spread)


def test_the_three_demo_configs_differ_only_in_the_loss(tmp_path):
    demo = _load_demo()
    dumps = {}
    for method in demo.CONFIGS:
        cfg = demo.build_demo_cfg(method, 7, str(tmp_path), 40, 5)
        assert (cfg.SEED, cfg.SOLVER.MAX_EPOCH, cfg.TEST.EVAL_PERIOD) == (7, 40, 5)
        assert cfg.MODEL.BACKBONE.NAME == "build_resnet_backbone" and cfg.MODEL.BACKBONE.DEPTH == "18x"
        assert not cfg.MODEL.BACKBONE.PRETRAIN and cfg.MODEL.FROM_SCRATCH
        assert tuple(cfg.INPUT.SIZE_TRAIN) == tuple(cfg.INPUT.SIZE_TEST) == (64, 32)
        assert "CrossEntropyLoss" not in cfg.MODEL.LOSSES.NAME  # metric-only, as the paper's comparison
        assert (cfg.DATALOADER.NUM_WORKERS, cfg.TEST.NUM_WORKERS) == (0, 0)  # pool processes cannot fork
        dumps[method] = cfg.clone()
    assert dumps["AdaSP"].MODEL.LOSSES.ADASP.TYPE == "adasp"
    assert dumps["SP-H"].MODEL.LOSSES.ADASP.TYPE == "sp-h"
    assert tuple(dumps["Triplet"].MODEL.LOSSES.NAME) == ("TripletLoss",)
    assert dumps["Triplet"].MODEL.LOSSES.TRI.HARD_MINING and dumps["Triplet"].MODEL.LOSSES.TRI.MARGIN == 0.3
    for method in ("SP-H", "Triplet"):
        cfg = dumps[method]
        cfg.defrost()
        cfg.MODEL.LOSSES.ADASP.TYPE = "adasp"
        cfg.MODEL.LOSSES.NAME = ("AdaSPLoss",)
        assert cfg.dump() == dumps["AdaSP"].dump()


def test_the_demo_spec_and_iterations():
    demo = _load_demo()
    spec = demo.data_spec(quick=False)
    assert spec.varied_id_fraction == 0.5 and spec.num_train_ids == spec.num_test_ids == 64
    assert demo.data_spec(quick=True).varied_id_fraction == 0.5
    assert demo.epochs_for(720, 18) == 40 and demo.epochs_for(100, 18) == 6 and demo.epochs_for(5, 18, 2) == 2
    args = demo.parse_args(["--quick", "--seeds", "5"])
    assert args.quick and args.seeds == 2 and args.baselines == ["SP-H"]
    assert demo.parse_args(["--baselines", "Triplet", "SP-H"]).baselines == ["Triplet", "SP-H"]


def test_per_seed_and_curve_lines():
    results = [RunResult(k, s, {"mAP": v, "R1": v + 1, "mINP": v - 1}, curve=[(18, v / 2), (36, v)])
               for s in (1, 2) for k, v in (("AdaSP", 10.0 * s), ("SP-H", 12.0 * s), ("Triplet", 8.0 * s))]
    lines = _load_demo().per_seed_and_curve(results, [1, 2]).splitlines()
    assert lines[1] == ("  seed 1: AdaSP 10.00 / 11.00 / 9.00; SP-H 12.00 / 13.00 / 11.00; "
                        "Triplet 8.00 / 9.00 / 7.00")
    assert lines[4] == "  AdaSP 18: 7.50, 36: 15.00"


def test_positive_table_means_over_seeds():
    def stats(v):
        return {"regular": {"s_H": v, "s_LH": v + 0.1, "w": 0.5}, "varied": {"s_H": -v, "s_LH": v, "w": 0.0}}

    results = [RunResult(k, s, {}, extra={"positives": stats(0.2 * s)}) for s in (1, 2)
               for k in ("AdaSP", "SP-H", "Triplet")]
    lines = _load_demo().positive_table(results).splitlines()
    assert lines[0].split()[1:5] == ["s_H", "regular", "s_H", "varied"]
    assert lines[2].split() == ["AdaSP", "0.300", "-0.300", "0.400", "0.300", "0.500", "0.000"]
    assert [line.split()[0] for line in lines[2:]] == ["AdaSP", "SP-H", "Triplet"]


@pytest.mark.slow
def test_make_demo_pipeline_end_to_end_at_reduced_size(run_demo_quick, tmp_path):
    """`make demo-adasp` runs `.venv/bin/python projects/AdaSP/demo.py`; DEMO_QUICK=1 is its reduced size;
    with both baselines, as the README's second command."""
    text, results, out = run_demo_quick(DEMO, "FASTREID_DATASETS", "--baselines", "SP-H", "Triplet")
    assert "6 runs, 48 training steps in all, 2 at a time" in text and "ETA" in text
    assert "of the training and 4 of the test identities" in text
    assert "AdaSP vs SP-H:" in text and "AdaSP vs Triplet:" in text
    assert text.count("Rule: a difference is larger than the seed noise") == 2
    runs = sorted((r["method"], r["seed"]) for r in results)
    assert runs == [(m, s) for m in ("AdaSP", "SP-H", "Triplet") for s in (1, 2)]
    assert all([it for it, _ in r["curve"]] == [4, 8] for r in results)
    with open(out / "learning_curve.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert (tmp_path / "datasets" / "adasp_demo_varied_quick" / "synthetic_reid" / MARKET_DIR_NAME).is_dir()
