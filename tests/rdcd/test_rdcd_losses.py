"""RDCD / SSCD losses on hand-checkable cases, parity with pytorch-metric-learning, gradient checks."""

import math

import rdcd  # noqa: F401
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import NTXentLoss

from rdcd.modeling.losses import (
    hard_negative_loss,
    koleo_entropy_loss,
    moco_infonce_loss,
    relational_kd_loss,
    sscd_infonce_loss,
)
from rdcd.modeling.queue import DescriptorQueue
from rdcd.modeling.relational import build_relational_kd


def test_moco_infonce_hand_computed():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    # logits / T=0.5: [2, 0, -2]; CE with target 0 = -log(e^2 / (e^2 + 1 + e^-2))
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    assert moco_infonce_loss(q, k, queue, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_hard_negative_hand_computed_and_clamped():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queue = torch.tensor([[0.6, 0.8], [0.0, -1.0]])
    # nearest negatives: 0.6 and 0.8 -> -(log 0.4 + log 0.2) / 2
    expected = -(math.log(0.4) + math.log(0.2)) / 2
    assert hard_negative_loss(q, queue).item() == pytest.approx(expected, rel=1e-6)
    # a negative identical to q: 1 - 1 = 0 is clamped to eps, no inf
    assert hard_negative_loss(q[:1], q[:1], eps=1e-3).item() == pytest.approx(-math.log(1e-3), rel=1e-5)


def test_relational_kd_hand_computed_zero_and_gradient():
    t = 0.04
    teacher = torch.tensor([[t * math.log(3.0), 0.0]])  # p_t = [3/4, 1/4]
    student = torch.zeros(1, 2)  # p_s = [1/2, 1/2]
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert relational_kd_loss(student, teacher, t).item() == pytest.approx(expected, rel=1e-5)
    sims = torch.randn(4, 7)
    assert relational_kd_loss(sims, sims, t).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    tt = torch.randn(3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: relational_kd_loss(x, tt, 0.5), (s,))


def test_sscd_infonce_matches_pytorch_metric_learning_ntxent():
    torch.manual_seed(1)
    embeddings = F.normalize(torch.randn(12, 8), dim=1)
    ids = torch.arange(6).repeat(2)
    ours = sscd_infonce_loss(embeddings, ids, 0.05)
    reference = NTXentLoss(temperature=0.05)(embeddings, ids)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_sscd_infonce_hand_computed_excludes_other_positives():
    # instance 0 has three views: every anchor's denominator holds its positive and the negatives only
    e = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    ids = torch.tensor([0, 0, 0, 1])
    # 6 ordered positive pairs, each: -log(e^{1/τ} / (e^{1/τ} + e^{0})) with τ = 1
    per_pair = -math.log(math.e / (math.e + 1.0))
    assert sscd_infonce_loss(e, ids, 1.0).item() == pytest.approx(6 * per_pair / 4, rel=1e-6)


def test_koleo_hand_computed():
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    ids = torch.tensor([0, 0, 1, 1])
    # nearest non-match similarity is 0.6 for everyone: -log sqrt(2 - 1.2)
    assert koleo_entropy_loss(e, ids).item() == pytest.approx(-0.5 * math.log(0.8), rel=1e-6)
    # duplicates of different instances: distance 0 clamped to sqrt(1e-6)
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert koleo_entropy_loss(same, torch.tensor([0, 1])).item() == pytest.approx(
        -0.5 * math.log(1e-6), rel=1e-5
    )


def test_queue_wraps_around_and_keeps_newest():
    queue = DescriptorQueue(5, 2)
    assert torch.allclose(queue.features.norm(dim=1), torch.ones(5))
    a = torch.arange(8.0).view(4, 2)
    queue.enqueue(a)
    assert int(queue.pointer) == 4
    b = torch.arange(100.0, 106.0).view(3, 2)
    queue.enqueue(b)  # rows 4, 0, 1
    assert int(queue.pointer) == 2
    assert torch.equal(queue.features[4], b[0]) and torch.equal(queue.features[:2], b[1:])
    assert torch.equal(queue.features[2:4], a[2:])
    queue.enqueue(torch.arange(14.0).view(7, 2))  # bigger than the queue: the newest 5 rows are kept
    assert sorted(queue.features[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_one_queue_uses_the_old_queue_then_enqueues_teacher():
    kd = build_relational_kd("one_queue", dim=4, queue_size=6, temperature=0.04)
    bank = kd.teacher_queue.features.clone()
    student = F.normalize(torch.randn(3, 4), dim=1)
    teacher = F.normalize(torch.randn(3, 4), dim=1)
    loss = kd(student, teacher)
    assert loss.item() == pytest.approx(
        relational_kd_loss(student @ bank.t(), teacher @ bank.t(), 0.04).item()
    )
    assert torch.equal(kd.teacher_queue.features[:3], teacher)
    assert kd(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)  # same embeddings, same distributions
    with pytest.raises(ValueError, match="KD_DIM"):
        kd(torch.randn(2, 3), teacher[:2])


def test_two_queue_compares_student_with_its_own_queue():
    kd = build_relational_kd("two_queue", dim=4, queue_size=8, temperature=0.1)
    student = F.normalize(torch.randn(2, 4), dim=1)
    teacher = F.normalize(torch.randn(2, 4), dim=1)
    kd(student, teacher)
    assert torch.equal(kd.student_queue.features[:2], student)
    assert torch.equal(kd.teacher_queue.features[:2], teacher)
    with pytest.raises(KeyError, match="KD_MODE"):
        build_relational_kd("three_queue", 4, 8, 0.1)
