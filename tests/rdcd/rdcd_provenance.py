"""Where every value of every RDCD preset comes from: a file and line of the official RDCD repository
(github.com/juntae9926/RDCD, "RDCD" below; its trainer and evaluation derive from SSCD's), or "ours" with the
reason. ``tests/rdcd/test_rdcd_provenance.py`` holds each DISC21 preset's resolved config against these rows,
every key a preset changes from detectron2 + RDCD defaults must have a row, and every default of
``add_rdcd_config`` is held against :data:`ADDER_DEFAULTS`.

Two upstream readings of the training data disagree (README "Presets"): ``train.sh`` trains on the 50,000
``final_queries``, the released checkpoint ``epoch=99-step=390599.ckpt`` is 100 epochs of 3,906 iterations,
i.e. the 1,000,000 DISC21 training images at batch 256. The presets follow the checkpoint; the
``_final_queries`` preset is ``train.sh``'s reading.
"""
from __future__ import annotations

from typing import Dict, List

from shared.engine.provenance import OURS, Row

SH = "RDCD train.sh"
TR = "RDCD rdcd/train.py"
MOCO = "RDCD rdcd/models/moco.py"
MODEL = "RDCD rdcd/models/model.py"
EVAL = "RDCD rdcd/disc_eval.py"
EVAL_SH = "RDCD rdcd/disc_eval.sh"
CKPT = "the released checkpoint epoch=99-step=390599.ckpt (100 x 3,906 iterations)"

#: pretrained-weights keys: their values and sources are tabled with the weights catalog, not here
WEIGHTS_KEYS = ("MODEL.WEIGHTS", "MODEL.RDCD.TEACHER_WEIGHTS", "MODEL.RDCD.STUDENT_WEIGHTS")

#: every default of add_rdcd_config (keys detectron2 does not have)
ADDER_DEFAULTS: List[Row] = [
    ("MODEL.SYNC_BN", True, f"{TR}:85 (--sync_bn default True)"),
    ("MODEL.RDCD.TEACHER", "sscd_r50", f"{SH}:12 (sscd_disc_mixup.torchvision.pt)"),
    ("MODEL.RDCD.TEACHER_BN", "batch", OURS + "the frozen teacher's BN as the official module in train mode"),
    ("MODEL.RDCD.STUDENT", "efficientnet_b0", f"{TR}:38,360; {SH}:11"),
    ("MODEL.RDCD.KD_DIM", 512, f"{SH}:22; {MODEL}:118"),
    ("MODEL.RDCD.DIM", 256, OURS + "the 256-d student of the paper's table (train.sh trains 64-d)"),
    ("MODEL.RDCD.GEM_P", 3.0, f"{MODEL}:120 (--pool_param)"),
    ("MODEL.RDCD.MOCO.MOMENTUM", 0.99, f"{SH}:15"),
    ("MODEL.RDCD.MOCO.QUEUE", 65536, f"{MOCO}:20 (K, not passed by {TR}:360)"),
    ("MODEL.RDCD.MOCO.TEMP", 0.07, f"{SH}:14"),
    ("MODEL.RDCD.MOCO.SHUFFLE_BN", True, f"{MOCO}:155"),
    ("MODEL.RDCD.LOSS.MOCO_W", 1.0, f"{SH}:18"),
    ("MODEL.RDCD.LOSS.HN_W", 5.0, f"{SH}:21"),
    ("MODEL.RDCD.LOSS.HN_EPS", 1e-3, f"{MOCO}:183 (clamp(min=1e-3))"),
    ("MODEL.RDCD.LOSS.KD_W", 1.0, f"{SH}:19"),
    ("MODEL.RDCD.LOSS.KD_TEMP", 0.04, f"{TR}:409 (Pbank T=0.04)"),
    ("MODEL.RDCD.LOSS.KD_QUEUE", 65536, f"{SH}:20; {TR}:409"),
    ("MODEL.RDCD.LOSS.KD_MODE", "one_queue", OURS + "the unpublished Pbank reconstructed as CompRess-1q"),
    ("MODEL.SSCD.NETWORK", "sscd_r50", OURS + "SSCD's ResNet-50 teacher network"),
    ("MODEL.SSCD.DIM", 512, f"{SH}:22 (the teacher's 512-d descriptor)"),
    ("MODEL.SSCD.GEM_P", 3.0, f"{MODEL}:120"),
    ("MODEL.SSCD.INFONCE_TEMP", 0.05, f"{TR}:62"),
    ("MODEL.SSCD.ENTROPY_W", 30.0, f"{TR}:63"),
    ("INPUT.COPY_DETECTION.TRAIN_SIZE", 224, f"{TR}:88"),
    ("INPUT.COPY_DETECTION.AUGMENTATION", "advanced", f"{SH}:7 (ADVANCED)"),
    ("INPUT.COPY_DETECTION.TEST_SIZE", 288, f"{TR}:91; {EVAL_SH}:4"),
    ("INPUT.COPY_DETECTION.TEST_RESIZE", "square", f"{EVAL_SH}:4 (--preserve_aspect_ratio=false)"),
    ("INPUT.COPY_DETECTION.FONT", "", OURS + "PIL's default font for text overlays (no font file shipped)"),
    ("INPUT.COPY_DETECTION.MEAN", [0.485, 0.456, 0.406], f"{TR}:189"),
    ("INPUT.COPY_DETECTION.STD", [0.229, 0.224, 0.225], f"{TR}:190"),
    ("TEST.COPY_DETECTION.K", 10, f"{EVAL}:45"),
    ("TEST.COPY_DETECTION.CANDIDATES", "per_query", f"{EVAL}:46-48 (--global_candidates False)"),
    ("TEST.COPY_DETECTION.EXPORT", True, OURS + "descriptors and predictions written for external tools"),
    ("TEST.COPY_DETECTION.SCORE_NORM", True, f"{EVAL}:39-41 (score_norm 1.0[0,2])"),
    ("TEST.COPY_DETECTION.BETA", 1.0, f"{EVAL}:41 (weight 1.0)"),
    ("TEST.COPY_DETECTION.NORM_K", 3, f"{EVAL}:41 (neighbours 0..2)"),
    ("TEST.COPY_DETECTION.PCAW_DIM", 0, f"{EVAL}:33-35 (--codecs default None)"),
    ("TEST.COPY_DETECTION.BACKGROUND_SUBSET", 0, OURS + "0 = every training image as background"),
    ("TEST.COPY_DETECTION.BATCH_SIZE", 64, f"{TR}:143 (val_batch_size)"),
    ("SOLVER.OPTIMIZER", "SGD", f"{TR}:424"),
    ("SOLVER.LARS_TRUST", 0.001, OURS + "LARS trust coefficient of the SSCD baseline presets"),
    ("SOLVER.LARS_EPS", 1e-8, OURS + "LARS epsilon of the SSCD baseline presets"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.ROOT", "synthetic_disc21", OURS + "CPU demo set"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.NUM_REFERENCES", 200, OURS + "CPU demo set"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.NUM_MATCHING_QUERIES", 100, OURS + "CPU demo set"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.NUM_DISTRACTOR_QUERIES", 100, OURS + "CPU demo set"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.NUM_TRAIN", 300, OURS + "CPU demo set"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.IMAGE_SIZE", 96, OURS + "CPU demo set"),
    ("DATASETS.SYNTHETIC_COPY_DETECTION.SEED", 0, OURS + "CPU demo set"),
]

#: rows of every DISC21 preset (Base-RDCD.yaml)
COMMON: List[Row] = [
    ("MODEL.DEVICE", "auto", OURS + "CUDA when available, else CPU"),
    ("DATASETS.TRAIN", ("disc21",), f"{CKPT}; {SH}:3 trains on final_queries instead (the _final_queries "
     "preset)"),
    ("DATASETS.TEST", ("disc21",), f"{SH}:5-6 (dev queries against references)"),
    ("DATALOADER.NUM_WORKERS", 8, OURS + f"loader processes only ({SH}:13 passes 16 per GPU)"),
    ("SOLVER.IMS_PER_BATCH", 256, f"{SH}:8 (global batch, {TR}:57-60)"),
    ("SOLVER.BASE_LR", 1.0, f"{SH}:9 (x batch / 256 = 1.0, {TR}:395-397)"),
    ("SOLVER.LR_SCHEDULER_NAME", "WarmupCosineLR", f"{TR}:430-437 (LinearWarmupCosineAnnealingLR per step)"),
    ("SOLVER.WARMUP_FACTOR", 0.0, f"{TR}:431 (pl_bolts warmup_start_lr default 0)"),
    ("SOLVER.WARMUP_ITERS", 19530, f"{TR}:70,433 (5 epochs) x 3,906 ({CKPT})"),
    ("SOLVER.MAX_ITER", 390600, f"{TR}:64,434 (100 epochs) x 3,906 = 1,000,000 // 256 ({TR}:570; {CKPT})"),
    ("SOLVER.CHECKPOINT_PERIOD", 39060, OURS + "a checkpoint every 10 epochs for --resume"),
    ("SOLVER.WEIGHT_DECAY", 1e-6, f"{TR}:83"),
    ("SOLVER.WEIGHT_DECAY_NORM", 1e-6, f"{TR}:424-428 (SGD over every parameter, norms included)"),
    ("TEST.EVAL_PERIOD", 0, OURS + "one evaluation after training (disc_eval.py is a separate script)"),
]
RDCD_RUN: List[Row] = [("MODEL.META_ARCHITECTURE", "RDCD", f"{TR}:357-411 (MoCo student + frozen teacher)")]


def _rdcd(name: str, extra: List[Row]) -> List[Row]:
    rows = {k: (k, v, s) for k, v, s in COMMON + RDCD_RUN + extra}
    rows["OUTPUT_DIR"] = ("OUTPUT_DIR", f"output/rdcd/{name}", OURS + "output folder")
    return list(rows.values())


RECONSTRUCTION = OURS + "a reconstruction: the official trainer hard-codes the EfficientNet-B0 student " \
    f"({TR}:38,360)"

#: preset (under projects/RDCD/configs/DISC21/) -> its rows
PRESETS: Dict[str, List[Row]] = {
    "rdcd_effb0_64.yaml": _rdcd("disc21_effb0_64", [("MODEL.RDCD.DIM", 64, f"{SH}:23")]),
    "rdcd_effb0_128.yaml": _rdcd("disc21_effb0_128", [
        ("MODEL.RDCD.DIM", 128, OURS + f"the paper's 128-d student; {SH}:23 shows --dim as the switch")]),
    "rdcd_effb0_256.yaml": _rdcd("disc21_effb0_256", []),
    "rdcd_effb0_64_final_queries.yaml": _rdcd("disc21_effb0_64_final_queries", [
        ("MODEL.RDCD.DIM", 64, f"{SH}:23"),
        ("DATASETS.TRAIN", ("disc21_final_queries",), f"{SH}:3 (--train_dataset_path .../final_queries)"),
        ("SOLVER.WARMUP_ITERS", 975, f"{TR}:70,433 (5 epochs) x 50,000 // 256 = 195 ({TR}:570)"),
        ("SOLVER.MAX_ITER", 19500, f"{TR}:64,434 (100 epochs) x 195"),
        ("SOLVER.CHECKPOINT_PERIOD", 1950, OURS + "a checkpoint every 10 epochs for --resume"),
    ]),
    "rdcd_mobilenetv3_256.yaml": _rdcd("disc21_mobilenetv3_256", [
        ("MODEL.RDCD.STUDENT", "mobilenet_v3_large",
         RECONSTRUCTION + f"; {EVAL_SH}:5 evaluates TV_MOBILENETV3")]),
    "rdcd_fastvit_256.yaml": _rdcd("disc21_fastvit_256", [
        ("MODEL.RDCD.STUDENT", "fastvit_t12", RECONSTRUCTION + "; the README lists FastViT-T12")]),
    "rdcd_effb0_256_dino.yaml": _rdcd("disc21_effb0_256_dino", [
        ("MODEL.RDCD.TEACHER", "dino_vitb8", OURS + f"a reconstruction: only {TR}:364-369 renames DINO "
         "weights; no DINO run is published"),
        ("MODEL.RDCD.KD_DIM", 1536, OURS + "[CLS, GeM(patch tokens)] of ViT-B/8 = 2 x 768"),
    ]),
}

SSCD: List[Row] = [
    ("MODEL.META_ARCHITECTURE", "SSCD", f"{TR}:62-63 (the SSCD objective: InfoNCE + entropy)"),
    ("SOLVER.OPTIMIZER", "LARS", OURS + "SSCD's published recipe (LARS); the RDCD trainer uses SGD"),
    ("SOLVER.IMS_PER_BATCH", 4096, f"{TR}:58 (--batch_size default 4096)"),
    ("SOLVER.BASE_LR", 4.8, f"{TR}:73 (0.3) x 4096 / 256 ({TR}:395-397)"),
    ("SOLVER.WARMUP_ITERS", 1220, f"{TR}:70 (5 epochs) x 1,000,000 // 4096 = 244"),
    ("SOLVER.MAX_ITER", 24400, f"{TR}:64 (100 epochs) x 244"),
    ("SOLVER.CHECKPOINT_PERIOD", 2440, OURS + "a checkpoint every 10 epochs for --resume"),
    ("TEST.COPY_DETECTION.PCAW_DIM", 512, OURS + "SSCD's PCA-whitening evaluation of the 512-d teacher"),
]
PRESETS["sscd_r50.yaml"] = _rdcd("disc21_sscd_r50", SSCD)
PRESETS["sscd_effb0.yaml"] = _rdcd("disc21_sscd_effb0", SSCD + [
    ("MODEL.SSCD.NETWORK", "efficientnet_b0", OURS + "the SSCD objective on the RDCD student network, the "
     "baseline the paper's gains are over")])
