"""A run folder used after training: a 2-iteration AdaSP run on the tiny synthetic set exits 0, puts its final
evaluation into metrics.json and TensorBoard and writes inference/<dataset>/ and run.json; load_run gives the
trainer's evaluation features; predict.py writes the documented files; the README's command runs as shown."""
import csv
import glob
import json
import os
from pathlib import Path

import numpy as np
import pytest

import adasp  # noqa: F401
from adasp.datasets import SYNTHETIC_SUBDIR
from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501
from shared.engine import load_run
from shared.engine.provenance import load_module_file

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "AdaSP"
TINY = SyntheticReIDSpec(num_train_ids=6, num_test_ids=4, num_distractors=2, num_junk=1, seed=5)
# 6 identities x 4 images = one batch of 24; 58 training images -> 2 iterations in the one epoch
OPTS = ["INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]", "SOLVER.IMS_PER_BATCH", "24",
        "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_ITERS", "0",
        "SOLVER.SCHED", "MultiStepLR", "TEST.IMS_PER_BATCH", "64"]
MARKET = f"{SYNTHETIC_SUBDIR}/Market-1501-v15.09.15"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adasp_run")
    generate_synthetic_market1501(str(root / "datasets" / SYNTHETIC_SUBDIR), TINY)
    old = os.environ.get("FASTREID_DATASETS")
    os.environ["FASTREID_DATASETS"] = str(root / "datasets")
    try:
        train_net = load_module_file(PROJECT / "train_net.py", "adasp_train_net")
        out = root / "run"
        config = str(PROJECT / "configs/Synthetic/adasp_R18.yml")
        args = train_net.default_argument_parser().parse_args(
            ["--config-file", config, "OUTPUT_DIR", str(out)] + OPTS)
        results = train_net.main(args)
    finally:
        if old is None:
            os.environ.pop("FASTREID_DATASETS")
        else:
            os.environ["FASTREID_DATASETS"] = old
    return out, root / "datasets", results


def test_two_iterations_finish_and_the_final_evaluation_is_on_disk(run):
    out, _, results = run
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert max(r["iteration"] for r in records) <= 1  # two iterations: 0 and 1
    final = [r for r in records if "mAP" in r]
    assert final and final[-1]["mAP"] == pytest.approx(results["mAP"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(glob.glob(str(out / "events.out.tfevents.*"))[0])
    events.Reload()
    assert events.Scalars("mAP")[-1].value == pytest.approx(results["mAP"], rel=1e-6)
    info = json.loads((out / "run.json").read_text())
    assert info["project"] == "adasp" and info["metadata"]["descriptor_dim"] == 512
    assert info["metadata"]["input_size"] == [32, 16] and info["metadata"]["metric"] == "cosine"


def test_inference_folder_and_load_run_give_the_evaluation_features(run, monkeypatch):
    out, datasets, _ = run
    folder = out / "inference" / "SyntheticMarket1501"
    query = np.load(folder / "query_embeddings.npy")
    query_ids = (folder / "query_ids.txt").read_text().split()
    assert query.shape == (len(query_ids), 512)
    gallery_ids = (folder / "gallery_ids.txt").read_text().split()
    assert np.load(folder / "gallery_embeddings.npy").shape == (len(gallery_ids), 512)
    rows = list(csv.DictReader(open(folder / "ranking.csv")))
    assert len(rows) == 10 * len(query_ids) and rows[0]["rank"] == "1"
    assert all(r["label_match"] == str(int(r["query_id"][:4] == r["gallery_id"][:4])) for r in rows)
    monkeypatch.setenv("FASTREID_DATASETS", str(datasets))
    extractor = load_run(str(out), device="cpu")
    ours = extractor.embed_files([str(datasets / MARKET / "query" / i) for i in query_ids])
    np.testing.assert_allclose(ours, query, atol=1e-5)


def test_predict_writes_embeddings_ranking_and_sheet(run, tmp_path):
    out, datasets, _ = run
    predict = load_module_file(PROJECT / "predict.py", "adasp_predict")
    assert predict.main(["--run", str(out), "--input", str(datasets / MARKET / "query"), "--gallery",
                         str(datasets / MARKET / "bounding_box_test"), "--output", str(tmp_path / "p"),
                         "--top-k", "3", "--sheet-queries", "2"]) == 0
    ids = (tmp_path / "p" / "ids.txt").read_text().split()
    assert np.load(tmp_path / "p" / "embeddings.npy").shape == (len(ids), 512)
    gallery_ids = (tmp_path / "p" / "gallery_ids.txt").read_text().split()
    rows = list(csv.DictReader(open(tmp_path / "p" / "ranking.csv")))
    assert len(rows) == 3 * len(ids) and {r["gallery_id"] for r in rows} <= set(gallery_ids)
    first = [float(r["score"]) for r in rows[:3]]
    assert first == sorted(first, reverse=True)  # cosine similarity, best first
    assert (tmp_path / "p" / "retrieval.png").stat().st_size > 0


def test_readme_command_runs_as_shown(run, tmp_path, run_readme_section):
    out, datasets, _ = run
    (tmp_path / "projects").symlink_to(PROJECT.parent)
    (tmp_path / "output" / "adasp" / "synthetic").mkdir(parents=True)
    (tmp_path / "output" / "adasp" / "synthetic" / "adasp_R18").symlink_to(out)
    (tmp_path / "datasets").symlink_to(datasets)
    run_readme_section(str(PROJECT / "README.md"), "Use a trained model", tmp_path)
    assert (tmp_path / "output" / "adasp" / "predictions" / "retrieval.png").is_file()


@pytest.mark.parametrize("layout,name,folders", [
    ("veri", "VeRi", ("VeRi", "veri")), ("vehicleid", "SmallVehicleID", ("VehicleID_V1.0", "vehicleid"))])
def test_vehicle_sets_are_read_as_released_and_as_renamed(tmp_path, monkeypatch, layout, name, folders):
    from adasp.datasets import load_reid_dataset
    from shared.datasets.synthetic_reid import generate_synthetic_vehicle_release

    spec = SyntheticReIDSpec(num_train_ids=3, num_test_ids=2, num_distractors=0, num_junk=0, seed=1,
                             height=16, width=8)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"none of the folders .*{folders[0]}.*{folders[1]}"):
        load_reid_dataset(name)
    for folder in folders:
        base = generate_synthetic_vehicle_release(str(tmp_path), layout, spec, folder=folder)
        dataset = load_reid_dataset(name, split_seed=0)
        if layout == "veri":  # every file of the release, split as written
            written = [len(os.listdir(os.path.join(base, s))) for s in ("image_train", "image_query",
                                                                        "image_test")]
            assert [len(dataset.train), len(dataset.query), len(dataset.gallery)] == written
        else:  # the list files' rows; fastreid puts one image per test vehicle in the gallery
            train_rows, test_rows = (open(os.path.join(base, "train_test_split", f)).read().split("\n")
                                     for f in ("train_list.txt", "test_list_800.txt"))
            assert len(dataset.train) == len([r for r in train_rows if r])
            assert len(dataset.query) + len(dataset.gallery) == len([r for r in test_rows if r])
            assert len(dataset.gallery) == 2  # the two test vehicles
        assert all(path.startswith(base) for path, *_ in dataset.train + dataset.query)
        __import__("shutil").rmtree(base)


def test_mgn_input_height_that_cannot_be_cut_into_stripes_is_refused_and_one_that_can_runs():
    import torch

    from adasp.config import add_adasp_config
    from adasp.trainer import AdaSPTrainer
    from shared.engine import build_cfg
    from shared.engine.validation import ConfigValueError

    config = str(PROJECT / "configs" / "Market1501" / "mgn_R50-ibn_adasp.yml")
    with pytest.raises(ConfigValueError, match=r"INPUT.SIZE_TRAIN=\(64, 32\): .*AdaSPMGN.*ceil\(64 / 16\)"):
        build_cfg(add_adasp_config, config, ["INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]",
                                             "MODEL.DEVICE", "cpu"], framework="fastreid")
    cfg = build_cfg(add_adasp_config, config, ["INPUT.SIZE_TRAIN", "[48, 16]", "INPUT.SIZE_TEST", "[48, 16]",
                                               "MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN", "False"],
                    framework="fastreid")  # the shapes only: no ImageNet file to download
    model = AdaSPTrainer.build_model(cfg).eval()
    with torch.no_grad():
        assert model({"images": torch.zeros(2, 3, 48, 16)}).shape[0] == 2  # 3 feature rows: 3 stripes
