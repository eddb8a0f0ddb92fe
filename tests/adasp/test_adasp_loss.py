"""SP-H / SP-LH / AdaSP loss: agreement with plain references, invariances, gradients, edge cases."""
import math

import numpy as np
import pytest
import torch

from adasp.modeling.loss import (SparsePairLoss, adaptive_weight, class_pair_similarities,
                                 sparse_pair_loss)

TYPES = ("sp-h", "sp-lh", "adasp")


def _lse(values):
    values = np.asarray(values, dtype=np.float64).ravel()
    top = values.max()
    return top + math.log(np.exp(values - top).sum())


def reference_loss(features, labels, tau, loss_type, eps=1e-12):
    """Per-class loops over the paper's formulas (with the official code's choices), in float64 numpy."""
    feats = np.asarray(features, dtype=np.float64)
    feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sim = feats @ feats.T
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist()))
    per_class = []
    for a in classes:
        members = np.flatnonzero(labels == a)
        s_h = -tau * _lse(-sim[np.ix_(members, members)] / tau)
        anchors = [-tau * _lse(-sim[i, members] / tau) for i in members]
        s_lh = tau * _lse(np.array(anchors) / tau)
        if loss_type == "sp-h":
            s_pos = s_h
        elif loss_type == "sp-lh":
            s_pos = s_lh
        else:
            w = 0.0 if s_h < 0 else 2 * s_h * s_lh / (s_h + s_lh + eps)
            s_pos = w * s_h + (1 - w) * s_lh
        negatives = [tau * _lse(sim[np.ix_(members, np.flatnonzero(labels == b))] / tau)
                     for b in classes if b != a]
        per_class.append(_lse(np.array([s_pos] + negatives) / tau) - s_pos / tau)
    return float(np.mean(per_class))


def block_layout_loss(features, num_ids, num_instances, tau, loss_type):
    """The official layout: contiguous equal-size identity blocks, masks from a Kronecker product."""
    feats = torch.nn.functional.normalize(features.double(), dim=1)
    sim = feats @ feats.t()
    block = torch.kron(torch.eye(num_ids, dtype=torch.float64), torch.ones(num_instances, num_instances))
    sim_blocks = sim.view(num_ids, num_instances, num_ids, num_instances).permute(0, 2, 1, 3)
    s_neg = tau * torch.logsumexp(sim_blocks.reshape(num_ids, num_ids, -1) / tau, dim=2)
    diag = torch.stack([sim_blocks[a, a] for a in range(num_ids)])  # [P, K, K]
    anchor = -tau * torch.logsumexp(-diag / tau, dim=2)
    s_h = -tau * torch.logsumexp(-anchor / tau, dim=1)
    s_lh = tau * torch.logsumexp(anchor / tau, dim=1)
    assert block.sum() == num_ids * num_instances ** 2
    w = torch.where(s_h < 0, torch.zeros_like(s_h), 2 * s_h * s_lh / (s_h + s_lh + 1e-12))
    s_pos = {"sp-h": s_h, "sp-lh": s_lh, "adasp": w * s_h + (1 - w) * s_lh}[loss_type]
    logits = s_neg.clone()
    logits[range(num_ids), range(num_ids)] = s_pos
    return torch.nn.functional.cross_entropy(logits / tau, torch.arange(num_ids)).item()


def _clustered_batch(num_ids, per_id, dim=32, spread=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=gen)
    labels = torch.repeat_interleave(torch.arange(num_ids), torch.as_tensor(per_id))
    feats = centres[labels] + spread * torch.randn(len(labels), dim, generator=gen)
    return feats.double(), labels


@pytest.mark.parametrize("loss_type", TYPES)
@pytest.mark.parametrize("spread", [0.05, 0.3, 3.0])
def test_matches_per_class_reference(loss_type, spread):
    feats, labels = _clustered_batch(5, [4, 2, 3, 1, 6], spread=spread, seed=1)
    for tau in (0.04, 0.1):
        ours = sparse_pair_loss(feats, labels, tau, loss_type).item()
        reference = reference_loss(feats.numpy(), labels.numpy(), tau, loss_type)
        assert ours == pytest.approx(reference, rel=1e-9, abs=1e-9)


def test_adasp_weight_lies_between_branches_for_compact_classes():
    feats, labels = _clustered_batch(4, [4] * 4, spread=0.05, seed=2)
    _, s_h, s_lh = class_pair_similarities(feats, labels, 0.04)
    assert bool((s_h > 0).all())
    w = adaptive_weight(s_h, s_lh)
    assert bool(((w > 0.5) & (w < 1.1)).all())
    ada, sp_h, sp_lh = (sparse_pair_loss(feats, labels, 0.04, t).item() for t in ("adasp", "sp-h", "sp-lh"))
    assert min(sp_h, sp_lh) <= ada <= max(sp_h, sp_lh)


def test_weight_rule_hand_values():
    s_h = torch.tensor([0.5, -0.1, 0.0])
    s_lh = torch.tensor([0.9, 0.8, 0.0])
    w = adaptive_weight(s_h, s_lh)
    assert w[0].item() == pytest.approx(2 * 0.5 * 0.9 / 1.4)
    assert w[1].item() == 0.0  # s_H < 0
    assert w[2].item() == 0.0  # 0 / (0 + eps), no NaN


@pytest.mark.parametrize("loss_type", TYPES)
def test_equals_block_formula_on_block_ordered_batch(loss_type):
    feats, labels = _clustered_batch(6, [4] * 6, spread=0.4, seed=3)
    ours = sparse_pair_loss(feats, labels, 0.04, loss_type).item()
    assert ours == pytest.approx(block_layout_loss(feats, 6, 4, 0.04, loss_type), rel=1e-10)


@pytest.mark.parametrize("loss_type", TYPES)
def test_invariant_to_batch_permutation_and_label_values(loss_type):
    feats, labels = _clustered_batch(5, [3, 4, 2, 5, 4], spread=0.5, seed=4)
    base = sparse_pair_loss(feats, labels, 0.04, loss_type)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    relabelled = labels * 7 + 100  # arbitrary, non-contiguous label values
    moved = sparse_pair_loss(feats[perm], relabelled[perm], 0.04, loss_type)
    assert moved.item() == pytest.approx(base.item(), rel=1e-12)


@pytest.mark.parametrize("loss_type", ("sp-h", "sp-lh"))
def test_gradcheck(loss_type):
    feats, labels = _clustered_batch(3, [3, 2, 3], dim=6, spread=0.5, seed=5)
    feats.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: sparse_pair_loss(f, labels, 0.2, loss_type), (feats,),
                                    eps=1e-6, atol=1e-6)


def test_gradcheck_adasp_with_weight_held_constant(monkeypatch):
    """AdaSP's weight is stop-gradient, so finite differences must hold it fixed at its current value;
    the analytic gradient of the real loss must then equal that finite-difference gradient."""
    import adasp.modeling.loss as loss_module

    feats, labels = _clustered_batch(3, [3, 2, 3], dim=6, spread=0.2, seed=5)
    _, s_h, s_lh = class_pair_similarities(feats, labels, 0.2)
    frozen = adaptive_weight(s_h, s_lh)
    assert bool((frozen > 0).all())  # the weight is active, not the w = 0 branch
    feats.requires_grad_(True)
    (analytic,) = torch.autograd.grad(sparse_pair_loss(feats, labels, 0.2, "adasp"), feats)
    monkeypatch.setattr(loss_module, "adaptive_weight", lambda *args, **kwargs: frozen)
    assert torch.autograd.gradcheck(lambda f: sparse_pair_loss(f, labels, 0.2, "adasp"), (feats,),
                                    eps=1e-6, atol=1e-6)
    (patched,) = torch.autograd.grad(sparse_pair_loss(feats, labels, 0.2, "adasp"), feats)
    torch.testing.assert_close(analytic, patched)


def test_adasp_weight_is_detached():
    """Gradient of AdaSP = w * grad(SP-H) + (1 - w) * grad(SP-LH) with a constant w (single class pair)."""
    feats, labels = _clustered_batch(2, [3, 3], dim=8, spread=0.05, seed=6)
    _, s_h, s_lh = class_pair_similarities(feats, labels, 0.1)
    feats.requires_grad_(True)
    _, s_h_g, s_lh_g = class_pair_similarities(feats, labels, 0.1)
    w = adaptive_weight(s_h, s_lh)
    mixed = (w * s_h_g + (1 - w) * s_lh_g).sum()
    (grad_mixed,) = torch.autograd.grad(mixed, feats, retain_graph=True)
    from adasp.modeling.loss import adasp as adaptive_rule
    (grad_rule,) = torch.autograd.grad(adaptive_rule(s_h_g, s_lh_g, 1e-12).sum(), feats)
    torch.testing.assert_close(grad_rule, grad_mixed)


@pytest.mark.parametrize("loss_type", TYPES)
def test_no_overflow_with_similarities_near_one(loss_type):
    """tau = 0.04 (exp(1/tau) = 7e10) and a far smaller tau, float32, all similarities ~ 1."""
    gen = torch.Generator().manual_seed(7)
    base = torch.randn(1, 64, generator=gen)
    feats = (base + 1e-3 * torch.randn(32, 64, generator=gen)).requires_grad_(True)
    labels = torch.arange(8).repeat(4)
    for tau in (0.04, 0.005):
        loss = sparse_pair_loss(feats, labels, tau, loss_type)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(feats.grad).all()
        feats.grad = None
    # far-apart classes with a tiny tau: exp(-2 / tau) underflows without the per-block shift
    far = torch.cat([base, -base]).repeat_interleave(3, 0).requires_grad_(True)
    loss = sparse_pair_loss(far, torch.tensor([0, 0, 0, 1, 1, 1]), 0.005, loss_type)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(far.grad).all()


def test_half_precision_input_is_computed_in_float32():
    feats, labels = _clustered_batch(4, [2] * 4, spread=3.0, seed=8)
    loss16 = sparse_pair_loss(feats.half(), labels, 0.04, "adasp")
    assert loss16.dtype == torch.float32
    reference = sparse_pair_loss(feats.half().double(), labels, 0.04).item()
    assert reference > 0.1
    assert loss16.item() == pytest.approx(reference, rel=1e-4)


def test_single_identity_batch_gives_zero_loss_and_zero_gradient():
    feats = torch.randn(4, 8, requires_grad=True)
    loss = sparse_pair_loss(feats, torch.zeros(4, dtype=torch.long), 0.04, "adasp")
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(feats.grad) == 0


def test_singleton_class_uses_self_pair():
    feats, labels = _clustered_batch(3, [1, 3, 2], spread=0.5, seed=9)
    _, s_h, s_lh = class_pair_similarities(feats, labels, 0.04)
    assert s_h[0].item() == pytest.approx(1.0, abs=1e-12)
    assert s_lh[0].item() == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs_raise_clear_errors():
    feats = torch.randn(4, 8)
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="empty batch"):
        sparse_pair_loss(feats[:0], labels[:0])
    with pytest.raises(ValueError, match="labels must be"):
        sparse_pair_loss(feats, labels[:3])
    with pytest.raises(ValueError, match="temperature"):
        sparse_pair_loss(feats, labels, temperature=0.0)
    with pytest.raises(KeyError, match="unknown MODEL.LOSSES.ADASP.TYPE 'sp-x'"):
        SparsePairLoss(loss_type="sp-x")
    nan_feats = feats.clone()
    nan_feats[1, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite features"):
        sparse_pair_loss(nan_feats, labels)


def test_module_matches_function():
    feats, labels = _clustered_batch(4, [3] * 4, seed=10)
    module = SparsePairLoss(temperature=0.05, loss_type="SP-LH")
    assert module(feats, labels).item() == sparse_pair_loss(feats, labels, 0.05, "sp-lh").item()


def test_a_batch_without_any_positive_pair_is_an_error_not_a_loss_of_1e_8():
    """Every identity once (NUM_INSTANCE 1, or a random sampler): before, the loss was ~1e-8 and the model
    learned nothing, with one warning line."""
    feats = torch.randn(16, 32, generator=torch.Generator().manual_seed(4), requires_grad=True)
    with pytest.raises(ValueError, match=r"each of the 16 identities of the batch has a single image.*"
                                         r"DATALOADER\.NUM_INSTANCE >= 2"):
        sparse_pair_loss(feats, torch.arange(16), 0.04, "adasp")
    # one identity with two images is enough for a real positive pair
    labels = torch.cat([torch.arange(15), torch.tensor([0])])
    assert sparse_pair_loss(feats, labels, 0.04, "adasp").item() > 1e-3
