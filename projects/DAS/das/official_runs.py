"""The official DAS runs, as facts with their sources, and what each means for our config keys.

Sources are files of the official DAS repository (github.com/lizhaoliu-Lec/DAS, on the Revisiting-DML
codebase): the run scripts ``table1.sh`` / ``table2.sh`` (line numbers of the "baseline + DAS" command) and
the argument defaults in ``scripts/parameters.py``. :func:`official_config` turns a run's flags into the
values our config must hold; ``tests/das/test_das_presets.py`` holds every preset in ``projects/DAS/configs``
against it, and ``python -m das.official_runs`` prints the preset table of the README.

Values with no official counterpart are listed in :data:`OURS` with the reason.
"""
from __future__ import annotations

import shlex
from typing import Any, Dict, Tuple

from shared.engine.provenance import markdown_table as table

#: scripts/parameters.py defaults used by the runs: flag -> (value, line)
DEFAULTS: Dict[str, Tuple[Any, int]] = {
    "lr": (1e-5, 34),
    "decay": (4e-4, 38),
    "n_epochs": (150, 39),
    "n_warm": (0, 40),
    "bs": (112, 42),
    "gamma": (0.3, 45),
    "tau": ((1000,), 46),
    "optim": ("adam", 52),
    "batch_mining": ("distance", 56),
    "embed_dim": (128, 61),
    "loss_contrastive_pos_margin": (0.0, 117),
    "loss_contrastive_neg_margin": (1.0, 119),
    "loss_triplet_margin": (0.2, 127),
    "loss_margin_margin": (0.2, 130),
    "loss_margin_beta_lr": (5e-4, 131),
    "loss_margin_beta": (1.2, 133),
    "loss_margin_nu": (0.0, 135),
    "loss_npair_l2": (0.005, 157),
    "loss_multisimilarity_pos_weight": (2.0, 169),
    "loss_multisimilarity_neg_weight": (40.0, 171),
    "loss_multisimilarity_margin": (0.1, 173),
    "loss_multisimilarity_thresh": (0.5, 175),
    "loss_lifted_neg_margin": (1.0, 178),
    "loss_lifted_l2": (0.005, 179),
    "miner_distance_lower_cutoff": (0.5, 222),
    "miner_distance_upper_cutoff": (1.4, 224),
    "samples_per_class": (2, 239),
    "das_num_produce": (3, 275),
    "das_dfs_num_scale": (4, 281),
    "das_dfs_scale_left": (0.5, 283),
    "das_dfs_scale_right": (2.0, 285),
    "das_mts_num_transformation_bank": (10, 289),
    "das_mts_scale": (0.01, 291),
    "aux_loss_weight": (1.0, 298),
}
BOOLEAN_FLAGS = ("embedding_producer_used", "detach", "aux_loss", "das_not_normalize")

#: training images / classes of the DML training split (first half of the classes; dataset releases)
TRAIN_IMAGES = {"cub200": 5864, "cars196": 8054, "online_products": 59551, "in-shop": 25882}
TRAIN_CLASSES = {"cub200": 100, "cars196": 98, "online_products": 11318, "in-shop": 3997}
DATASET_NAMES = {"cub200": "cub200", "cars196": "cars196", "online_products": "sop", "in-shop": "inshop"}

_T2 = "--n_epochs 300 --tau 200 250 --bs 112 --samples_per_class 2 --embedding_producer_used"
_T1 = _T2 + " --embed_dim 512 --loss multisimilarity --das_dfs_num_scale 8"
_CC = "--das_dfs_scale_left 0.99 --das_dfs_scale_right 1.01 --detach"  # the CUB / CARS DAS flags

#: preset file -> (source of the official run, the run's relevant flags)
RUNS: Dict[str, Tuple[str, str]] = {}
for _data, _folder, _lines in (("cub200", "CUB200", (8, 14, 20, 26, 32, 38, 44)),
                               ("cars196", "CARS196", (51, 57, 63, 69, 75, 81, 87))):
    for _name, _line, _flags in zip(
        ("triplet_semihard", "triplet_distance", "contrastive_distance", "margin_distance", "lifted", "npair",
         "multi_similarity"), _lines,
        ("--loss triplet --batch_mining semihard --arch resnet50_frozen_normalize",
         "--loss triplet --batch_mining distance --arch resnet50_frozen_normalize",
         "--loss contrastive --batch_mining distance --arch resnet50_frozen_normalize",
         "--loss margin --batch_mining distance --arch resnet50_frozen_normalize",
         "--loss lifted --batch_mining lifted --arch resnet50_frozen --das_not_normalize",
         "--loss npair --batch_mining npair --arch resnet50_frozen --das_not_normalize",
         "--loss multisimilarity --arch resnet50_frozen_normalize")):
        RUNS[f"{_folder}/{_name}.yaml"] = (f"table2.sh:{_line}", f"--dataset {_data} {_T2} {_flags} {_CC}")
for _name, _line, _flags in (
    (
        "triplet_semihard",
        94,
        "--loss triplet --batch_mining semihard --arch resnet50_frozen_normalize "
        "--das_mts_scale 0.1 --aux_loss --detach",
    ),
    (
        "triplet_distance",
        100,
        "--loss triplet --batch_mining distance --arch resnet50_frozen_normalize "
        "--das_mts_scale 0.1 --aux_loss --detach",
    ),
    (
        "contrastive_distance",
        106,
        "--loss contrastive --batch_mining distance --arch resnet50_frozen_normalize --das_mts_scale 0.1",
    ),
    ("margin_distance", 112, "--loss margin --batch_mining distance --arch resnet50_frozen_normalize"),
    (
        "lifted",
        118,
        "--loss lifted --batch_mining lifted --arch resnet50_frozen --das_dfs_scale_left 0.99 "
        "--das_dfs_scale_right 1.01 --das_mts_scale 0.1 --das_not_normalize",
    ),
    (
        "npair",
        124,
        "--loss npair --batch_mining npair --arch resnet50_frozen --das_dfs_scale_left 0.99 "
        "--das_dfs_scale_right 1.01 --das_mts_scale 0.1 --das_not_normalize",
    ),
    ("multi_similarity", 130, "--loss multisimilarity --arch resnet50_frozen_normalize --das_mts_scale 0.1"),
):
    RUNS[f"SOP/{_name}.yaml"] = (f"table2.sh:{_line}", f"--dataset online_products {_T2} {_flags}")
RUNS.update(
    {
        "CUB200/multi_similarity_bninception512_table1.yaml": (
            "table1.sh:5",
            f"--dataset cub200 {_T1} --arch bninception_double_frozen_normalize --das_mts_scale 0.01 {_CC}",
        ),
        "CUB200/multi_similarity_r512_table1.yaml": (
            "table1.sh:7",
            f"--dataset cub200 {_T1} --arch resnet50_double_frozen_normalize --das_mts_scale 0.01 {_CC} "
            "--bs 180 --decay 0.0008",
        ),
        "CARS196/multi_similarity_bninception512_table1.yaml": (
            "table1.sh:11",
            f"--dataset cars196 {_T1} --arch bninception_double_frozen_normalize --das_mts_scale 0.01 {_CC}",
        ),
        # table1.sh:13 sits under the CARS heading but passes --dataset cub200; the dataset follows the
        # heading
        "CARS196/multi_similarity_r512_table1.yaml": (
            "table1.sh:13",
            f"--dataset cars196 {_T1} --arch resnet50_double_frozen_normalize --das_mts_scale 0.01 {_CC}",
        ),
        "SOP/multi_similarity_bninception512_table1.yaml": (
            "table1.sh:17",
            f"--dataset online_products {_T1} --arch bninception_double_frozen_normalize --das_mts_scale 0.1",
        ),
        "SOP/multi_similarity_r512_table1.yaml": (
            "table1.sh:19",
            f"--dataset online_products {_T1} --arch resnet50_double_frozen_normalize --das_mts_scale 0.1",
        ),
        # no official In-Shop run: the CUB Table-2 multi-similarity + DAS flags on the official In-Shop loader
        "InShop/multi_similarity.yaml": (
            "ours (table2.sh:44 flags on dataset/in_shop.py)",
            f"--dataset in-shop {_T2} --loss multisimilarity --arch resnet50_frozen_normalize {_CC}",
        ),
    }
)

#: config keys a preset sets with no official counterpart -> why
OURS: Dict[str, str] = {
    "TEST.EVAL_PERIOD": ("every 5 epochs to save time; the official code evaluates after every epoch "
                         "(scripts/standard.py:155)"),
    "SOLVER.CHECKPOINT_PERIOD": ("periodic checkpoints for --resume; the official code keeps the best one by "
                                 "e_recall@1 (scripts/parameters.py:86)"),
    "TEST.RETRIEVAL.RECALL_KS": ("SOP 1/10/100/1000 and In-Shop 1/10/.../50 as usually reported; official "
                                 "default: 1/2/4/8 for every dataset (scripts/parameters.py:80)"),
    "TEST.RETRIEVAL.KMEANS_SEED": "fixed k-means seed for repeatable NMI / F1",
    "DATALOADER.NUM_WORKERS": "loader processes only (the official --kernels 6); no effect on results",
    "DATASETS.TEST_GALLERY": "In-Shop query -> gallery protocol (dataset/in_shop.py has the same split)",
    "DATASETS.TEST": "the test half of the same dataset",
    "MODEL.META_ARCHITECTURE": "our model class",
    "MODEL.LOSS.POS_MARGIN": ("lifted: the positive margin of pytorch-metric-learning's generalized lifted "
                              "loss, 0 = none (the official lifted loss has only a negative margin, "
                              "scripts/parameters.py:178); contrastive: official, scripts/parameters.py:117"),
}


_P = "scripts/parameters.py"
_PRODUCER = "modules/embedding_producer.py"
_DEMO = "ours: the synthetic CPU set's size (demo only)"

#: pretrained-weights keys: tabled with the weights catalog, not here
WEIGHTS_KEYS = ("MODEL.WEIGHTS", "MODEL.EMBEDDING.BACKBONE_WEIGHTS")

#: every key add_das_config adds to detectron2's defaults (but WEIGHTS_KEYS) -> (value, source); the presets'
#: rows above override them per run, ``tests/das/test_das_presets.py`` holds the adder against this table
ADDER_DEFAULTS: Dict[str, Tuple[Any, str]] = {
    "MODEL.EMBEDDING.BACKBONE": ("resnet50", "ours: the backbone of most official runs "
                                 "(--arch resnet50_...)"),
    "MODEL.EMBEDDING.DIM": (DEFAULTS["embed_dim"][0], f"{_P}:{DEFAULTS['embed_dim'][1]}"),
    "MODEL.EMBEDDING.FREEZE_BN": (True, "ours: most official runs pass --arch ..._frozen"),
    "MODEL.EMBEDDING.NORMALIZE": (True, "ours: most official runs pass --arch ..._normalize"),
    "MODEL.EMBEDDING.POOLING": ("avg", "ours: the Table-2 runs' --arch has no _double"),
    "MODEL.INPUT_SCALE": (1.0, "dataset/basic_dataset_scaffold.py:58 (ToTensor, [0, 1])"),
    "MODEL.DAS.ENABLED": (True, "ours: DAS on unless a baseline preset turns it off"),
    "MODEL.DAS.NUM_CLASSES": (0, "ours: 0 = the training set's class count, read at build time"),
    "MODEL.DAS.NUM_PRODUCE": (DEFAULTS["das_num_produce"][0], f"{_P}:{DEFAULTS['das_num_produce'][1]}"),
    "MODEL.DAS.DETACH": (True, "ours: the CUB / CARS runs pass --detach (table2.sh)"),
    "MODEL.DAS.NORMALIZE": (True, f"{_P} (--das_not_normalize is a store_true flag: off unless passed)"),
    "MODEL.DAS.AUX_LOSS_WEIGHT": (0.0, f"{_P} (--aux_loss is a store_true flag: off unless passed)"),
    "MODEL.DAS.DFS.ENABLED": (True, f"{_PRODUCER}:83-84,116 (always applied)"),
    "MODEL.DAS.DFS.NUM_SCALE": (DEFAULTS["das_dfs_num_scale"][0], f"{_P}:{DEFAULTS['das_dfs_num_scale'][1]}"),
    "MODEL.DAS.DFS.RANGE": ((0.99, 1.01), "ours: the CUB / CARS runs' --das_dfs_scale_left/right (the "
                            f"parser's defaults 0.5, 2.0 at {_P}:283,285)"),
    "MODEL.DAS.MTS.ENABLED": (True, f"{_PRODUCER}:89,103 (always applied)"),
    "MODEL.DAS.MTS.BANK_SIZE": (DEFAULTS["das_mts_num_transformation_bank"][0],
                                f"{_P}:{DEFAULTS['das_mts_num_transformation_bank'][1]}"),
    "MODEL.DAS.MTS.SCALE": (DEFAULTS["das_mts_scale"][0], f"{_P}:{DEFAULTS['das_mts_scale'][1]}"),
    "MODEL.LOSS.NAME": ("triplet", "ours: a loss must be named; every preset names its run's"),
    "MODEL.LOSS.MARGIN": (DEFAULTS["loss_triplet_margin"][0], f"{_P}:{DEFAULTS['loss_triplet_margin'][1]}"),
    "MODEL.LOSS.POS_MARGIN": (DEFAULTS["loss_contrastive_pos_margin"][0],
                              f"{_P}:{DEFAULTS['loss_contrastive_pos_margin'][1]}"),
    "MODEL.LOSS.NEG_MARGIN": (DEFAULTS["loss_contrastive_neg_margin"][0],
                              f"{_P}:{DEFAULTS['loss_contrastive_neg_margin'][1]}"),
    "MODEL.LOSS.BETA_LR": (DEFAULTS["loss_margin_beta_lr"][0], f"{_P}:{DEFAULTS['loss_margin_beta_lr'][1]}"),
    "MODEL.LOSS.MARGIN_BETA": (DEFAULTS["loss_margin_beta"][0], f"{_P}:{DEFAULTS['loss_margin_beta'][1]}"),
    "MODEL.LOSS.MARGIN_NU": (DEFAULTS["loss_margin_nu"][0], f"{_P}:{DEFAULTS['loss_margin_nu'][1]}"),
    "MODEL.LOSS.LEARN_BETA": (True, f"{_P}:137 (beta constant only with --loss_margin_beta_constant)"),
    "MODEL.LOSS.MS_ALPHA": (DEFAULTS["loss_multisimilarity_pos_weight"][0],
                            f"{_P}:{DEFAULTS['loss_multisimilarity_pos_weight'][1]}"),
    "MODEL.LOSS.MS_BETA": (DEFAULTS["loss_multisimilarity_neg_weight"][0],
                           f"{_P}:{DEFAULTS['loss_multisimilarity_neg_weight'][1]}"),
    "MODEL.LOSS.MS_BASE": (DEFAULTS["loss_multisimilarity_thresh"][0],
                           f"{_P}:{DEFAULTS['loss_multisimilarity_thresh'][1]}"),
    "MODEL.LOSS.L2_REG_WEIGHT": (DEFAULTS["loss_npair_l2"][0], f"{_P}:{DEFAULTS['loss_npair_l2'][1]}"),
    "MODEL.MINER.NAME": ("distance_weighted",
                         f"{_P}:{DEFAULTS['batch_mining'][1]} (--batch_mining distance)"),
    "MODEL.MINER.MARGIN": (0.2, "sampling/semihard.py:10 (the triplet margin)"),
    "MODEL.MINER.CUTOFF": (DEFAULTS["miner_distance_lower_cutoff"][0],
                           f"{_P}:{DEFAULTS['miner_distance_lower_cutoff'][1]}"),
    "MODEL.MINER.NONZERO_LOSS_CUTOFF": (DEFAULTS["miner_distance_upper_cutoff"][0],
                                        f"{_P}:{DEFAULTS['miner_distance_upper_cutoff'][1]}"),
    "MODEL.MINER.MS_EPSILON": (DEFAULTS["loss_multisimilarity_margin"][0],
                               f"{_P}:{DEFAULTS['loss_multisimilarity_margin'][1]}"),
    "SOLVER.OPTIMIZER": ("Adam", f"{_P}:{DEFAULTS['optim'][1]}"),
    "DATALOADER.SAMPLES_PER_CLASS": (DEFAULTS["samples_per_class"][0],
                                     f"{_P}:{DEFAULTS['samples_per_class'][1]}"),
    "DATASETS.TEST_GALLERY": ((), "ours: empty = each test set is its own query and gallery (CUB, CARS, "
                              "SOP)"),
    "INPUT.TRAIN_SIZE": (224, "dataset/basic_dataset_scaffold.py:33,41"),
    "INPUT.TEST_RESIZE": (256, "dataset/basic_dataset_scaffold.py:57"),
    "INPUT.TEST_SIZE": (224, "dataset/basic_dataset_scaffold.py:57"),
    "INPUT.CROP_SCALE": ((0.08, 1.0), "dataset/basic_dataset_scaffold.py:41 (RandomResizedCrop default)"),
    "TEST.RETRIEVAL.RECALL_KS": ((1, 2, 4, 8), f"{_P}:80"),
    "TEST.RETRIEVAL.NUM_CLUSTERS": (0, "ours: 0 = the number of test labels (presets give the training "
                                    "count)"),
    "TEST.RETRIEVAL.KMEANS_SEED": (0, "ours: fixed k-means seed for repeatable NMI / F1"),
    "TEST.RETRIEVAL.VIS_QUERIES": (0, "ours: no retrieval pictures unless asked"),
    "TEST.RETRIEVAL.VIS_TOPK": (5, "ours: neighbours per retrieval picture"),
    "TEST.RETRIEVAL.RANKING_TOPK": (10, "ours: neighbours per query in inference/<set>/ranking.csv (the "
                                        "official code writes no ranking)"),
    "DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES": (40, _DEMO),
    "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS": (20, _DEMO),
    "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGE_SIZE": (64, _DEMO),
    "DATASETS.SYNTHETIC_FINE_GRAINED.SEED": (0, _DEMO),
}


def parse_flags(flags: str) -> Dict[str, Any]:
    """The official argparse result for ``flags`` over :data:`DEFAULTS` (later flags win, as argparse)."""
    opt: Dict[str, Any] = {k: v for k, (v, _) in DEFAULTS.items()}
    opt.update({k: False for k in BOOLEAN_FLAGS})
    tokens = shlex.split(flags)
    i = 0
    while i < len(tokens):
        key = tokens[i][2:]
        values = []
        i += 1
        while i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        if key in BOOLEAN_FLAGS:
            opt[key] = True
        elif key == "tau":
            opt[key] = tuple(int(v) for v in values)
        elif key in ("dataset", "arch", "loss", "batch_mining"):
            opt[key] = values[0]
        else:
            opt[key] = type(DEFAULTS[key][0])(float(values[0])) if key in DEFAULTS else values[0]
    return opt


LOSS_NAMES = {"triplet": "triplet", "contrastive": "contrastive", "margin": "margin",
              "multisimilarity": "multi_similarity", "lifted": "lifted", "npair": "npair"}
MINER_NAMES = {"semihard": "semihard", "distance": "distance_weighted", "lifted": "none", "npair": "none"}


#: loss -> (our key, official flag, note after its parameters.py line) of the loss's own hyper-parameters
LOSS_FLAGS: Dict[str, Tuple[Tuple[str, str, str], ...]] = {
    "triplet": (("MODEL.LOSS.MARGIN", "loss_triplet_margin", ""),),
    "contrastive": (("MODEL.LOSS.POS_MARGIN", "loss_contrastive_pos_margin", ""),
                    ("MODEL.LOSS.NEG_MARGIN", "loss_contrastive_neg_margin", "")),
    "margin": (("MODEL.LOSS.MARGIN", "loss_margin_margin", ""),
               ("MODEL.LOSS.BETA_LR", "loss_margin_beta_lr", ""),
               ("MODEL.LOSS.MARGIN_BETA", "loss_margin_beta", ""),
               ("MODEL.LOSS.MARGIN_NU", "loss_margin_nu", "")),
    "multisimilarity": (("MODEL.LOSS.MS_ALPHA", "loss_multisimilarity_pos_weight", ""),
                        ("MODEL.LOSS.MS_BETA", "loss_multisimilarity_neg_weight", ""),
                        ("MODEL.MINER.MS_EPSILON", "loss_multisimilarity_margin", " (mined inside the loss)"),
                        ("MODEL.LOSS.MS_BASE", "loss_multisimilarity_thresh", "")),
    "lifted": (("MODEL.LOSS.NEG_MARGIN", "loss_lifted_neg_margin", ""),
               ("MODEL.LOSS.L2_REG_WEIGHT", "loss_lifted_l2", "")),
    "npair": (("MODEL.LOSS.L2_REG_WEIGHT", "loss_npair_l2", ""),),
}


def official_config(flags: str) -> Dict[str, Tuple[Any, str]]:
    """Our config key -> (the value the official run implies, where it comes from)."""
    o = parse_flags(flags)
    p = "scripts/parameters.py"
    arch, data, loss = o["arch"], o["dataset"], o["loss"]
    per_epoch = TRAIN_IMAGES[data] // o["bs"]
    bnin = arch.startswith("bninception")
    scaffold = "dataset/basic_dataset_scaffold.py"
    out: Dict[str, Tuple[Any, str]] = {
        "DATASETS.TRAIN": ((f"{DATASET_NAMES[data]}_train",), "--dataset"),
        "MODEL.EMBEDDING.BACKBONE": ("bninception" if bnin else "resnet50", "--arch"),
        # the ImageNet file pretrainedmodels downloads (pretrained='imagenet' unless --not_pretrained)
        "MODEL.EMBEDDING.BACKBONE_WEIGHTS": (
            "weights://cadene/bn_inception-52deb4733#das" if bnin else "weights://torchvision/resnet50-19c8e357",
            "backbone/bninception.py:15 (pretrainedmodels bn_inception-52deb4733.pth)" if bnin
            else "backbone/resnet50.py:15-16 (pretrainedmodels resnet50 = torchvision resnet50-19c8e357.pth)",
        ),
        "MODEL.EMBEDDING.FREEZE_BN": ("frozen" in arch, "--arch ..._frozen (BN in eval mode)"),
        "MODEL.EMBEDDING.NORMALIZE": ("normalize" in arch, "--arch ..._normalize"),
        "MODEL.EMBEDDING.POOLING": (
            "avg+max" if "double" in arch else "avg",
            "--arch ..._double (GAP + GMP)",
        ),
        "MODEL.EMBEDDING.DIM": (o["embed_dim"], f"--embed_dim / {p}:61"),
        "MODEL.PIXEL_MEAN": (
            [0.4078, 0.4588, 0.502] if bnin else [0.485, 0.456, 0.406],
            f"{scaffold}:31 (BGR order)" if bnin else f"{scaffold}:28",
        ),
        "MODEL.PIXEL_STD": (
            [0.0039] * 3 if bnin else [0.229, 0.224, 0.225],
            f"{scaffold}:{31 if bnin else 28}",
        ),
        "INPUT.FORMAT": ("BGR" if bnin else "RGB", f"{scaffold}:94 (BGR flip for bninception)"),
        "MODEL.INPUT_SCALE": (1.0, f"{scaffold}:58 (ToTensor, [0, 1])"),
        "INPUT.TRAIN_SIZE": (224, f"{scaffold}:33,41"),
        "INPUT.CROP_SCALE": ((0.08, 1.0), f"{scaffold}:41 (RandomResizedCrop default)"),
        "INPUT.TEST_RESIZE": (256, f"{scaffold}:57"),
        "INPUT.TEST_SIZE": (224, f"{scaffold}:57"),
        "SOLVER.BASE_LR": (o["lr"], f"{p}:34"),
        "SOLVER.OPTIMIZER": ({"adam": "Adam", "sgd": "SGD"}[o["optim"]], f"{p}:52"),
        "SOLVER.LR_SCHEDULER_NAME": ("WarmupMultiStepLR", f"{p}:43 (multistep, stepped per epoch)"),
        "DATALOADER.SAMPLER_TRAIN": ("ClassBalancedSampler", f"{p}:237 (class_random)"),
        "SOLVER.WEIGHT_DECAY": (o["decay"], f"--decay / {p}:38"),
        "SOLVER.GAMMA": (o["gamma"], f"{p}:45"),
        "SOLVER.WARMUP_ITERS": (o["n_warm"] * per_epoch, f"{p}:40"),
        "SOLVER.IMS_PER_BATCH": (o["bs"], "--bs"),
        "DATALOADER.SAMPLES_PER_CLASS": (o["samples_per_class"], "--samples_per_class"),
        "SOLVER.MAX_ITER": (
            o["n_epochs"] * per_epoch,
            f"--n_epochs x floor({TRAIN_IMAGES[data]}/bs) (datasampler/class_random_sampler.py:26)",
        ),
        "SOLVER.STEPS": (tuple(t * per_epoch for t in o["tau"]), "--tau x iterations per epoch"),
        "TEST.RETRIEVAL.NUM_CLUSTERS": (TRAIN_CLASSES[data], "training classes (metric/__init__.py:71)"),
        "MODEL.DAS.ENABLED": (o["embedding_producer_used"], "--embedding_producer_used"),
        "MODEL.DAS.NUM_PRODUCE": (o["das_num_produce"], f"{p}:275"),
        "MODEL.DAS.DFS.NUM_SCALE": (o["das_dfs_num_scale"], f"--das_dfs_num_scale / {p}:281"),
        "MODEL.DAS.DFS.RANGE": (
            (o["das_dfs_scale_left"], o["das_dfs_scale_right"]),
            f"--das_dfs_scale_left/right / {p}:283,285",
        ),
        "MODEL.DAS.DFS.ENABLED": (True, "modules/embedding_producer.py:83-84,116 (DFS scaling always "
                                  "applied: the official producer has no switch)"),
        "MODEL.DAS.MTS.ENABLED": (True, "modules/embedding_producer.py:89,103 (MTS shift always applied: the "
                                  "official producer has no switch)"),
        "MODEL.DAS.MTS.BANK_SIZE": (o["das_mts_num_transformation_bank"], f"{p}:289"),
        "MODEL.DAS.MTS.SCALE": (o["das_mts_scale"], f"--das_mts_scale / {p}:291"),
        "MODEL.DAS.DETACH": (o["detach"], "--detach"),
        "MODEL.DAS.NORMALIZE": (not o["das_not_normalize"], "--das_not_normalize"),
        "MODEL.DAS.AUX_LOSS_WEIGHT": (
            o["aux_loss_weight"] if o["aux_loss"] else 0.0,
            f"--aux_loss / {p}:298",
        ),
        "MODEL.LOSS.NAME": (LOSS_NAMES[loss], "--loss"),
    }
    for key, flag, note in LOSS_FLAGS.get(loss, ()):
        out[key] = (o[flag], f"{p}:{DEFAULTS[flag][1]}{note}")
    if loss == "margin":
        out["MODEL.LOSS.LEARN_BETA"] = (True,
                                        f"{p}:137 (beta constant only with --loss_margin_beta_constant)")
    elif loss == "multisimilarity":
        out["MODEL.MINER.NAME"] = ("multi_similarity",
                                   "loss/multisimilarity.py (pair mining inside the loss)")
    if loss != "multisimilarity":
        out["MODEL.MINER.NAME"] = (MINER_NAMES[o["batch_mining"]], "--batch_mining")
    if o["batch_mining"] == "semihard" and loss != "multisimilarity":
        out["MODEL.MINER.MARGIN"] = (o[f"loss_{loss}_margin"], "sampling/semihard.py:10 (the loss margin)")
    if o["batch_mining"] == "distance" and loss != "multisimilarity":
        out["MODEL.MINER.CUTOFF"] = (o["miner_distance_lower_cutoff"], f"{p}:222")
        out["MODEL.MINER.NONZERO_LOSS_CUTOFF"] = (o["miner_distance_upper_cutoff"], f"{p}:224")
    return out


def markdown_table() -> str:
    """One row per preset: the official run and the values that vary between runs."""
    varying = (
        "MODEL.EMBEDDING.BACKBONE",
        "MODEL.EMBEDDING.DIM",
        "MODEL.EMBEDDING.POOLING",
        "SOLVER.IMS_PER_BATCH",
        "SOLVER.WEIGHT_DECAY",
        "SOLVER.MAX_ITER",
        "SOLVER.STEPS",
        "MODEL.DAS.DFS.NUM_SCALE",
        "MODEL.DAS.DFS.RANGE",
        "MODEL.DAS.MTS.SCALE",
        "MODEL.DAS.DETACH",
        "MODEL.DAS.AUX_LOSS_WEIGHT",
        "MODEL.DAS.NORMALIZE",
    )
    short = ("backbone", "D", "pool", "batch", "WD", "MAX_ITER", "STEPS", "K", "DFS range", "MTS β", "detach",
             "aux w", "norm")
    rows = []
    for preset, (source, flags) in RUNS.items():
        values = official_config(flags)
        cells = []
        for key in varying:
            v = values[key][0]
            cells.append(", ".join(str(x) for x in v) if isinstance(v, tuple) else str(v))
        rows.append([f"`{preset}`", source, *cells])
    return table(("preset", "official run", *short), rows)


if __name__ == "__main__":
    print(markdown_table())
