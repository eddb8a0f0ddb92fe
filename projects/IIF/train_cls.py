#!/usr/bin/env python
"""Long-tailed classification with IIF: stage 1 (softmax CE), then post-hoc IIF and decoupled IIF re-training.

    python projects/IIF/train_cls.py --config-file projects/IIF/configs/classification/synthetic_lt.yaml
    python projects/IIF/train_cls.py --config-file projects/IIF/configs/classification/imagenet_lt_resnet50.yaml \
        DATA.ROOT /data/ImageNet_LT
    --resume reuses OUTPUT_DIR/stage1.pth if present (stage 1 is skipped).

Prints top-1 (overall / many / medium / few-shot) for: CE baseline, CE + post-hoc IIF, decoupled IIF.
"""
import argparse
import copy
import io
import json
import logging
import os
import time

import iif  # noqa: F401  (compat layer first)
import torch
from detectron2.utils.events import CommonMetricPrinter, EventStorage, JSONWriter, TensorboardXWriter
from detectron2.utils.logger import setup_logger
from tabulate import tabulate
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import CIFAR100

from iif.classification import (
    IIFLogitScaler,
    TextListDataset,
    build_classifier,
    class_counts,
    decoupled_retrain,
    evaluate,
    get_cls_cfg,
    longtail_indices,
    shot_groups,
    train_one_epoch,
)
from iif.weights import compute_iif_weights
from shared.datasets import dataset_root, require_path
from shared.datasets.synthetic_longtail_cls import generate_synthetic_longtail
from shared.engine import atomic_write_bytes, resolve_device

logger = logging.getLogger("iif")


def _datasets(cfg, train_tf, test_tf):
    """(train, test) datasets with a ``targets`` list on the train set."""
    root = cfg.DATA.ROOT
    if cfg.DATA.SOURCE == "synthetic":
        root = root or os.path.join(dataset_root(), "synthetic_longtail")
        generate_synthetic_longtail(root)
    elif cfg.DATA.SOURCE == "textlist":
        root = require_path(root or os.path.join(dataset_root(), "ImageNet_LT"), "long-tailed classification (DATA.ROOT)")
    elif cfg.DATA.SOURCE == "cifar100_lt":
        root = root or os.path.join(dataset_root(), "cifar100")
        require_path(os.path.join(root, "cifar-100-python"), "CIFAR-100 (DATA.ROOT)")
        full = CIFAR100(root, train=True, transform=train_tf, download=False)
        train = Subset(full, longtail_indices(full.targets, cfg.DATA.NUM_CLASSES, cfg.DATA.IMBALANCE_FACTOR))
        train.targets = [full.targets[i] for i in train.indices]
        return train, CIFAR100(root, train=False, transform=test_tf, download=False)
    else:
        raise KeyError(f"unknown DATA.SOURCE {cfg.DATA.SOURCE!r}; valid: synthetic, textlist, cifar100_lt")
    return (TextListDataset(root, cfg.DATA.TRAIN_LIST, cfg.DATA.NUM_CLASSES, train_tf),
            TextListDataset(root, cfg.DATA.TEST_LIST, cfg.DATA.NUM_CLASSES, test_tf))


def build_loaders(cfg):
    size = cfg.DATA.INPUT_SIZE
    normalize = transforms.Normalize(cfg.DATA.MEAN, cfg.DATA.STD)
    train_tf = transforms.Compose([transforms.Resize((size, size)), transforms.RandomCrop(size, padding=size // 8),
                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), normalize])
    train_set, test_set = _datasets(cfg, train_tf, test_tf)
    generator = torch.Generator().manual_seed(cfg.SEED)
    kwargs = dict(batch_size=cfg.SOLVER.BATCH_SIZE, num_workers=cfg.DATA.NUM_WORKERS)
    return (DataLoader(train_set, shuffle=True, drop_last=False, generator=generator, **kwargs),
            DataLoader(test_set, shuffle=False, **kwargs), train_set.targets)


def train_stage1(cfg, model, train_loader, device):
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                                weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    steps = cfg.SOLVER.EPOCHS * len(train_loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cfg.SOLVER.COSINE else None
    writers = [CommonMetricPrinter(cfg.SOLVER.EPOCHS), JSONWriter(os.path.join(cfg.OUTPUT_DIR, "metrics.json")),
               TensorboardXWriter(cfg.OUTPUT_DIR)]
    with EventStorage(0) as storage:
        for epoch in range(cfg.SOLVER.EPOCHS):
            storage.iter = epoch
            start = time.perf_counter()
            loss = train_one_epoch(model, train_loader, optimizer, device, scheduler=scheduler)
            storage.put_scalars(loss_cls=loss, lr=optimizer.param_groups[0]["lr"], time=time.perf_counter() - start)
            for w in writers:
                w.write()
    for w in writers:
        w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--resume", action="store_true", help="reuse OUTPUT_DIR/stage1.pth if it exists")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    cfg = get_cls_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.DEVICE = resolve_device(cfg.MODEL.DEVICE)
    cfg.freeze()
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    setup_logger(cfg.OUTPUT_DIR, name="iif")
    setup_logger(cfg.OUTPUT_DIR, name="detectron2", abbrev_name="d2")
    torch.manual_seed(cfg.SEED)
    device = cfg.MODEL.DEVICE

    train_loader, test_loader, train_labels = build_loaders(cfg)
    counts = class_counts(train_labels, cfg.DATA.NUM_CLASSES)
    groups = shot_groups(counts, cfg.DATA.MANY_SHOT, cfg.DATA.FEW_SHOT)
    weights = torch.tensor(compute_iif_weights(counts, len(train_labels), cfg.IIF.VARIANT), dtype=torch.float32)
    if cfg.IIF.NORM_P > 0:
        weights = weights / torch.linalg.vector_norm(weights, cfg.IIF.NORM_P)
    logger.info("train images per class %s; IIF %s weights %s", counts.tolist(), cfg.IIF.VARIANT,
                [round(w, 3) for w in weights.tolist()])

    model = build_classifier(cfg.MODEL.BACKBONE, cfg.DATA.NUM_CLASSES).to(device)
    stage1 = os.path.join(cfg.OUTPUT_DIR, "stage1.pth")
    if args.resume and os.path.exists(stage1):
        model.load_state_dict(torch.load(stage1, map_location=device, weights_only=True))
        logger.info("loaded stage-1 model from %s", stage1)
    else:
        if cfg.MODEL.WEIGHTS:
            model.load_state_dict(torch.load(cfg.MODEL.WEIGHTS, map_location=device, weights_only=True), strict=False)
        train_stage1(cfg, model, train_loader, device)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        atomic_write_bytes(stage1, buffer.getvalue())

    results = {
        "softmax CE": evaluate(model, test_loader, device, groups),
        f"CE + post-hoc IIF ({cfg.IIF.VARIANT})": evaluate(
            model, test_loader, device, groups, IIFLogitScaler(weights, mode="posthoc").to(device)),
    }
    decoupled = copy.deepcopy(model)
    scaler = decoupled_retrain(decoupled, train_loader, weights, cfg.IIF.DECOUPLED_EPOCHS, cfg.IIF.DECOUPLED_LR, device)
    results[f"decoupled IIF ({cfg.IIF.VARIANT})"] = evaluate(decoupled, test_loader, device, groups, scaler)
    atomic_write_bytes(os.path.join(cfg.OUTPUT_DIR, "results.json"), json.dumps(results, indent=2).encode())
    rows = [[name] + [r[k] for k in ("top1", "many", "medium", "few")] for name, r in results.items()]
    print(f"\nlong-tailed classification, {cfg.MODEL.BACKBONE} from {'stage1.pth' if args.resume else 'scratch'}; "
          f"classes many/medium/few = {[int(g.sum()) for g in groups.values()]}")
    print(tabulate(rows, headers=["model", "top-1", "many", "medium", "few"], floatfmt=".1f", tablefmt="github"))


if __name__ == "__main__":
    main()
