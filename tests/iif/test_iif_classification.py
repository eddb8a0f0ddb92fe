"""Long-tailed classification: scaler modes, CIFAR-LT profile, shot groups, lists, the official models
(SE-ResNet-32, cosine classifier), mixup, Cutout, the epoch schedule and a GenericTrainer run."""
import math

import iif  # noqa: F401  (compat layer first)
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg

from iif.classification import (
    IIFClsTrainer,
    TextListDataset,
    add_iif_cls_config,
    class_counts,
    evaluate_logits,
    iif_weights_for_counts,
    prepare_cls_cfg,
    shot_groups,
)
from iif.classification.datasets import Cutout
from iif.modeling.classifiers import (
    CosNormClassifier,
    IIFLogitScaler,
    LongTailClassifier,
    SEResNet32,
    build_network,
    mixup_batch,
)
from iif.weights import compute_iif_weights
from shared.datasets.synthetic_longtail_cls import (
    SyntheticLTSpec,
    generate_synthetic_longtail,
    longtail_class_sizes,
)
from shared.engine import ConfigValueError, build_cfg


def test_scaler_modes():
    w = torch.tensor([1.0, 2.0, 3.0])
    logits = torch.tensor([[1.0, 1.0, 1.0]])
    posthoc = IIFLogitScaler(w, mode="posthoc")
    posthoc.train()
    torch.testing.assert_close(posthoc(logits), logits)  # training: plain CE
    posthoc.eval()
    torch.testing.assert_close(posthoc(logits), torch.tensor([[1.0, 2.0, 3.0]]))  # test-time multiply
    train_test = IIFLogitScaler(w, mode="train_test").train()
    torch.testing.assert_close(train_test(logits), torch.tensor([[1.0, 2.0, 3.0]]))
    off = IIFLogitScaler(w, mode="off").eval()
    torch.testing.assert_close(off(logits), logits)
    with pytest.raises(ValueError, match="logits have 2 classes"):
        posthoc(torch.zeros(1, 2))
    with pytest.raises(KeyError, match="IIFLogitScaler mode 'test_only'; choose one of"):
        IIFLogitScaler(w, mode="test_only")
    with pytest.raises(ValueError, match="NaN"):
        IIFLogitScaler(torch.tensor([1.0, float("nan")]))


def test_cifar_lt_profile():
    sizes = longtail_class_sizes(100, 10, 0.01)
    assert sizes == [int(100 * 0.01 ** (c / 9)) for c in range(10)]
    assert sizes[0] == 100 and sizes[-1] == 1 and sizes[1] == 59
    with pytest.raises(ValueError, match="imbalance factor"):
        longtail_class_sizes(100, 10, 0.0)


def test_shot_groups_and_counts():
    counts = class_counts([0] * 150 + [1] * 100 + [2] * 20 + [3] * 19, 5)
    np.testing.assert_array_equal(counts, [150, 100, 20, 19, 0])
    groups = shot_groups(counts, many_shot=100, few_shot=20)
    assert groups["many"].tolist() == [True, False, False, False, False]
    assert groups["medium"].tolist() == [False, True, True, False, False]
    assert groups["few"].tolist() == [False, False, False, True, True]


def test_text_list_errors(tmp_path):
    (tmp_path / "list.txt").write_text("a.png 0\nb.png seven\n")
    with pytest.raises(ValueError, match="list.txt:2: expected '<path> <label>'"):
        TextListDataset(str(tmp_path), "list.txt", 3)
    (tmp_path / "list.txt").write_text("a.png 5\n")
    with pytest.raises(ValueError, match="label 5 outside \\[0, 3\\)"):
        TextListDataset(str(tmp_path), "list.txt", 3)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        TextListDataset(str(tmp_path), "missing.txt", 3)


def test_cifar_lt_subsampling_keeps_first_images_of_each_class():
    from iif.classification import longtail_indices

    labels = [c for _ in range(10) for c in range(3)]  # balanced: 10 per class, interleaved
    idx = longtail_indices(labels, 3, 0.1)
    kept = [labels[i] for i in idx]
    assert [kept.count(c) for c in range(3)] == longtail_class_sizes(10, 3, 0.1) == [10, 3, 1]
    assert idx[:3] == [0, 1, 2]  # dataset order


def test_evaluate_logits_per_group_accuracy():
    # per class: correct / count = 2/2, 1/2, 1/2 -> top-1 4/6; many = class 0, medium = 1, few = 2
    correct, count = torch.tensor([2.0, 1.0, 1.0]), torch.tensor([2.0, 2.0, 2.0])
    groups = shot_groups(np.array([200, 50, 5]), 100, 20)
    assert evaluate_logits(correct, count, groups) == pytest.approx(
        {"top1": 400 / 6, "many": 100.0, "medium": 50.0, "few": 50.0})
    # a group without test images is NaN, not 0
    r = evaluate_logits(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([2.0, 2.0, 0.0]), groups)
    assert math.isnan(r["few"])


def test_classification_iif_weights_use_the_total_of_the_class_counts():
    counts = [200, 50, 5]
    expected = compute_iif_weights(counts, 255.0, "smooth")
    np.testing.assert_allclose(iif_weights_for_counts(counts, "smooth").numpy(), expected, rtol=1e-6)
    w = iif_weights_for_counts(counts, "raw", norm_p=2.0)
    assert torch.linalg.vector_norm(w, 2).item() == pytest.approx(1.0)


def test_cosnorm_classifier_formula_hand_computed():
    head = CosNormClassifier(2, 2, scale=16.0)
    head.weight.data = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    x = torch.tensor([[0.0, 3.0]])  # |x| = 3: squashed norm 3/4, direction (0, 1)
    expected = 16.0 * 0.75 * torch.tensor([[4.0 / 5.0, -1.0]])
    torch.testing.assert_close(head(x), expected)
    learned = CosNormClassifier(2, 2, learn_scale=True)
    learned.weight.data = head.weight.data.clone()
    torch.testing.assert_close(learned(x), expected * 25.0 / 16.0)  # scale a^2 with a = 5


def test_se_resnet32_structure():
    net = SEResNet32(100, head="cosine")
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 3 * 5 * 2  # 31 conv layers + the classifier = 32 weighted layers
    assert [m.fc1.out_features for m in (net.layer1[0].se, net.layer3[0].se)] == [4, 16]  # SE reduction 4
    # option-A shortcut: stride-2 subsampling, channels zero-padded on both sides
    block = net.layer2[0]
    x = torch.randn(1, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (1, 32, 4, 4)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0
    assert isinstance(build_network("seresnet50", 10, "cosine").fc, CosNormClassifier)


def test_mixup_loss_is_the_lambda_mix_of_both_targets():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    model = LongTailClassifier(net, torch.ones(3), [5, 3, 1], mixup_alpha=0.2, seed=7)
    images, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(1)
    loss = model((images, labels))["loss_cls"]
    torch.manual_seed(1)
    mixed, ya, yb, lam = mixup_batch(images, labels, 0.2, np.random.default_rng(7))
    logits = net(mixed)
    expected = lam * F.cross_entropy(logits, ya) + (1 - lam) * F.cross_entropy(logits, yb)
    torch.testing.assert_close(loss, expected)
    assert 0.0 <= lam <= 1.0


def test_cutout_zeroes_one_clipped_square():
    img = torch.ones(3, 10, 10)
    out = Cutout(4, np.random.default_rng(0))(img)
    zero = (out == 0).all(dim=0)
    rows, cols = zero.any(dim=1).nonzero().flatten(), zero.any(dim=0).nonzero().flatten()
    assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
    assert zero.sum() == len(rows) * len(cols) and img.min() == 1  # a rectangle; input untouched


def _tiny_cfg(root, **overrides):
    cfg = get_cfg()
    add_iif_cls_config(cfg)
    cfg.merge_from_list(["DATA.SOURCE", "synthetic", "DATA.ROOT", str(root), "DATA.NUM_CLASSES", 4,
                         "DATA.MANY_SHOT", 20, "DATA.FEW_SHOT", 5, "INPUT.CLS.SIZE", 16, "INPUT.CLS.PAD", 2,
                         "MODEL.CLS.BACKBONE", "se_resnet32", "MODEL.CLS.HEAD", "cosine",
                         "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", 16,
                         "SOLVER.BASE_LR", 0.05, "SOLVER.EPOCHS", 2, "SOLVER.MILESTONES", [1], "SEED", 0,
                         "OUTPUT_DIR", str(root / "out")] + [x for kv in overrides.items() for x in kv])
    return cfg


@pytest.fixture(scope="module")
def tiny_lt(tmp_path_factory):
    root = tmp_path_factory.mktemp("iif_tiny_lt")
    generate_synthetic_longtail(str(root), SyntheticLTSpec(num_classes=4, max_train_per_class=24,
                                                           imbalance_factor=0.25, val_per_class=2,
                                                           test_per_class=4, image_size=16))
    return root


def test_epoch_schedule_becomes_iterations(tiny_lt):
    cfg = prepare_cls_cfg(_tiny_cfg(tiny_lt))
    n = sum(longtail_class_sizes(24, 4, 0.25))  # 24 + 15 + 9 + 6 = 54 images -> 4 iterations of 16
    assert n == 54
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.CHECKPOINT_PERIOD) == \
        (8, (4,), 3, 4)
    # milestones at or after the last epoch never fire (official MultiStepLR 360/380 in a 20-epoch stage)
    assert prepare_cls_cfg(_tiny_cfg(tiny_lt, **{"SOLVER.EPOCHS": 1})).SOLVER.STEPS == ()
    with pytest.raises(ValueError, match="MODEL.CLS.PRETRAINED"):
        prepare_cls_cfg(_tiny_cfg(tiny_lt, **{"MODEL.CLS.TRAINABLE": "last_block"}))


def test_config_checks_name_the_key():
    with pytest.raises(ConfigValueError, match="MODEL.CLS.HEAD"):
        build_cfg(add_iif_cls_config, opts=["MODEL.DEVICE", "cpu", "MODEL.CLS.HEAD", "mlp"])
    with pytest.raises(ConfigValueError, match="IIF.MODE"):
        build_cfg(add_iif_cls_config, opts=["MODEL.DEVICE", "cpu", "IIF.MODE", "sometimes"])


def test_trainer_stage1_then_decoupled_classifier_only(tiny_lt):
    cfg = prepare_cls_cfg(_tiny_cfg(tiny_lt))
    trainer = IIFClsTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert set(results) == {"softmax", "posthoc_iif_smooth"}
    for r in results.values():
        assert set(r) == {"top1", "many", "medium", "few"} and 0 <= r["top1"] <= 100
    final = tiny_lt / "out" / "model_final.pth"
    assert final.is_file()
    counts = class_counts(trainer.model.class_counts.tolist(), 100)  # sanity: buffer holds per-class counts
    assert trainer.model.class_counts.tolist() == [24, 15, 9, 6] and counts.sum() > 0
    # decoupled stage: only the classifier's weight and bias move; IIF scales in training and test
    cfg2 = prepare_cls_cfg(_tiny_cfg(tiny_lt, **{"MODEL.WEIGHTS": str(final),
                                                 "MODEL.CLS.TRAINABLE": "classifier",
                                                 "IIF.MODE": "train_test", "SOLVER.EPOCHS": 1,
                                                 "OUTPUT_DIR": str(tiny_lt / "out2")}))
    stage2 = IIFClsTrainer(cfg2)
    stage2.resume_or_load(resume=False)
    before = {k: v.clone() for k, v in stage2.model.named_parameters()}
    assert before["net.fc.weight"].equal(trainer.model.net.fc.weight.detach())  # started from stage 1
    results2 = stage2.train()
    assert set(results2) == {"iif"}
    for name, value in stage2.model.named_parameters():
        assert value.requires_grad == (name in ("net.fc.weight",)), name  # cosine head: no bias, scale fixed
        assert value.equal(before[name]) != (name == "net.fc.weight"), name


def test_train_cls_front_door_trains_then_evaluates_only(tiny_lt, tmp_path):
    """projects/IIF/train_cls.py: setup (+ prepare_cls_cfg) and train_or_evaluate, then --eval-only on its
    model_final.pth gives the same numbers."""
    import importlib.util
    from pathlib import Path

    from shared.engine import default_argument_parser

    script = Path(__file__).resolve().parents[2] / "projects" / "IIF" / "train_cls.py"
    spec = importlib.util.spec_from_file_location("iif_train_cls", script)
    train_cls = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_cls)
    opts = ["DATA.SOURCE", "synthetic", "DATA.ROOT", str(tiny_lt), "DATA.NUM_CLASSES", "4",
            "DATA.MANY_SHOT", "20", "DATA.FEW_SHOT", "7", "INPUT.CLS.SIZE", "16",
            "MODEL.CLS.BACKBONE", "se_resnet32", "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", "16",
            "SOLVER.EPOCHS", "1", "SEED", "0", "OUTPUT_DIR", str(tmp_path)]
    trained = train_cls.main(default_argument_parser().parse_args(opts))
    assert (tmp_path / "model_final.pth").is_file() and (tmp_path / "config.yaml").is_file()
    args = default_argument_parser().parse_args(
        ["--eval-only"] + opts + ["MODEL.WEIGHTS", str(tmp_path / "model_final.pth")])
    evaluated = train_cls.main(args)
    assert set(evaluated) == set(trained) == {"softmax", "posthoc_iif_smooth"}
    for name in trained:
        assert evaluated[name] == pytest.approx(trained[name])


@pytest.mark.parametrize("trainable", ["all", "last_block", "classifier"])
def test_trainable_switch_freezes_what_it_says(trainable):
    """Places-LT: "all" (the official code, its finetune_places call commented out) vs "last_block" (the
    official README's reading: only the final residual block and the classifier)."""
    from iif.classification.trainer import set_trainable
    from iif.modeling.classifiers import classifier_layer, last_block

    net = build_network("se_resnet32", 10, "cosine")
    set_trainable(net, trainable)
    trained = {id(p) for p in net.parameters() if p.requires_grad}
    every = {id(p) for p in net.parameters()}
    head = {id(getattr(classifier_layer(net), n)) for n in ("weight", "bias")
            if isinstance(getattr(classifier_layer(net), n, None), torch.nn.Parameter)}
    block = {id(p) for p in last_block(net).parameters()}
    expected = {"all": every, "last_block": head | block, "classifier": head}[trainable]
    assert trained == expected and (trainable == "all" or trained < every)
