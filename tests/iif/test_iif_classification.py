"""Long-tailed classification: IIFLogitScaler modes, CIFAR-LT profile, shot groups, lists, decoupled stage."""
import iif  # noqa: F401  (compat layer first)
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms

from iif.classification import (
    IIFLogitScaler,
    TextListDataset,
    build_classifier,
    class_counts,
    classifier_layer,
    decoupled_retrain,
    evaluate,
    shot_groups,
    train_one_epoch,
)
from shared.datasets.synthetic_longtail_cls import SyntheticLTSpec, generate_synthetic_longtail, longtail_class_sizes


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
    with pytest.raises(KeyError, match="valid"):
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


def test_evaluate_per_group_accuracy():
    # the "images" are the logits themselves, the model is the identity
    logits = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0], [0, 0, 5.0], [0, 3.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loader = DataLoader(TensorDataset(logits, labels), batch_size=4)
    groups = shot_groups(np.array([200, 50, 5]), 100, 20)
    r = evaluate(nn.Identity(), loader, "cpu", groups)
    assert r == pytest.approx({"top1": 400 / 6, "many": 100.0, "medium": 50.0, "few": 50.0})
    # post-hoc IIF with weight 2 on the few-shot class flips [0, 3, 2] -> [0, 3, 4]
    r = evaluate(nn.Identity(), loader, "cpu", groups, IIFLogitScaler(torch.tensor([1.0, 1.0, 2.0])))
    assert r == pytest.approx({"top1": 500 / 6, "many": 100.0, "medium": 50.0, "few": 100.0})


def test_text_list_errors(tmp_path):
    (tmp_path / "list.txt").write_text("a.png 0\nb.png seven\n")
    with pytest.raises(ValueError, match="list.txt:2: expected '<path> <label>'"):
        TextListDataset(str(tmp_path), "list.txt", 3)
    (tmp_path / "list.txt").write_text("a.png 5\n")
    with pytest.raises(ValueError, match="label 5 outside \\[0, 3\\)"):
        TextListDataset(str(tmp_path), "list.txt", 3)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        TextListDataset(str(tmp_path), "missing.txt", 3)


def test_synthetic_lt_stage1_and_decoupled_retrain(tmp_path):
    spec = SyntheticLTSpec(num_classes=4, max_train_per_class=24, imbalance_factor=0.25, val_per_class=2,
                           test_per_class=4, image_size=16)
    paths = generate_synthetic_longtail(str(tmp_path), spec)
    assert open(paths["train"]).readline().split()[0].startswith("train/class_000/")
    tf = transforms.ToTensor()
    train = TextListDataset(str(tmp_path), "SyntheticLT_train.txt", 4, tf)
    counts = class_counts(train.targets, 4)
    np.testing.assert_array_equal(counts, longtail_class_sizes(24, 4, 0.25))
    loader = DataLoader(train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = build_classifier("resnet10t", 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    assert np.isfinite(train_one_epoch(model, loader, opt, "cpu"))
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    fc = classifier_layer(model)
    weights = torch.tensor([1.0, 1.5, 2.0, 2.5])
    scaler = decoupled_retrain(model, loader, weights, epochs=1, lr=0.01, device="cpu")
    assert scaler.mode == "train_test"
    for name, value in model.state_dict().items():  # only the classifier changed (BN stats frozen too)
        if name.startswith("fc."):
            assert not torch.equal(value, frozen[name])
        else:
            assert torch.equal(value, frozen[name]), name
    assert fc.weight.requires_grad and not next(model.conv1.parameters()).requires_grad


def test_cifar_lt_subsampling_keeps_first_images_of_each_class():
    from iif.classification import longtail_indices

    labels = [c for _ in range(10) for c in range(3)]  # balanced: 10 per class, interleaved
    idx = longtail_indices(labels, 3, 0.1)
    kept = [labels[i] for i in idx]
    assert [kept.count(c) for c in range(3)] == longtail_class_sizes(10, 3, 0.1) == [10, 3, 1]
    assert idx[:3] == [0, 1, 2]  # dataset order
