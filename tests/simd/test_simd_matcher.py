"""MaxSimMatcher (mmdet MaxIoUAssigner semantics) vs detectron2's Matcher, on crafted quality matrices."""
import pytest
import torch

from simd.matcher import MaxSimMatcher, build_matcher

THRESHOLDS, LABELS = [0.3, 0.7], [0, -1, 1]


def _both(quality):
    mmdet = build_matcher(THRESHOLDS, LABELS, True, "mmdet", min_pos_quality=0.3)(quality)
    d2 = build_matcher(THRESHOLDS, LABELS, True, "detectron2")(quality)
    return mmdet, d2


def test_thresholds_without_low_quality_step_match_detectron2():
    quality = torch.tensor([[0.1, 0.3, 0.5, 0.7, 0.95], [0.0, 0.29, 0.1, 0.2, 0.0]])
    m = MaxSimMatcher(THRESHOLDS, LABELS, allow_low_quality_matches=False)(quality)
    d = build_matcher(THRESHOLDS, LABELS, False, "detectron2")(quality)
    assert torch.equal(m[0], d[0]) and torch.equal(m[1], d[1])
    assert m[1].tolist() == [0, -1, -1, 1, 1]  # neg < 0.3 <= ignore < 0.7 <= pos


def test_min_pos_gate_gives_tiny_gt_no_positive_in_mmdet_mode():
    # GT 1's best anchor scores 0.2 < min_pos 0.3: mmdet gives it nothing, detectron2 makes anchor 2 positive
    quality = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.05, 0.2]])
    (m_idx, m_lab), (d_idx, d_lab) = _both(quality)
    assert m_lab.tolist() == [1, 0, 0]
    assert d_lab.tolist() == [1, 0, 1] and d_idx[2] == 1


def test_detectron2_mode_labels_every_anchor_of_a_zero_quality_gt():
    # the failure mode the gate avoids: a GT with quality 0 everywhere makes *all* anchors positive in d2
    quality = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    (_, m_lab), (_, d_lab) = _both(quality)
    assert m_lab.tolist() == [0, 0, 0, 0]
    assert d_lab.tolist() == [1, 1, 1, 1]


def test_mmdet_reassigns_gt_index_detectron2_keeps_argmax():
    # anchor 1: best GT is 0 (0.5) but it is GT 1's best anchor (0.4 >= min_pos)
    quality = torch.tensor([[0.8, 0.5, 0.0], [0.0, 0.4, 0.1]])
    (m_idx, m_lab), (d_idx, d_lab) = _both(quality)
    assert m_lab.tolist() == d_lab.tolist() == [1, 1, 0]
    assert m_idx[1] == 1  # mmdet: re-assigned to the GT whose low-quality match it is
    assert d_idx[1] == 0  # detectron2: keeps the argmax GT


def test_last_gt_wins_shared_anchor_and_ties_all_assigned():
    # GTs 0 and 1 both have their maximum (0.45) at anchor 0; GT 2 has two tied maxima (anchors 1, 2)
    quality = torch.tensor([[0.45, 0.1, 0.1, 0.0], [0.45, 0.2, 0.2, 0.0], [0.0, 0.35, 0.35, 0.1]])
    m_idx, m_lab = MaxSimMatcher(THRESHOLDS, LABELS, True, 0.3)(quality)
    assert m_lab.tolist() == [1, 1, 1, 0]
    assert m_idx[:3].tolist() == [1, 2, 2]


def test_empty_gt_all_negative():
    quality = torch.zeros((0, 5))
    for mode in ("mmdet", "detectron2"):
        idx, lab = build_matcher(THRESHOLDS, LABELS, True, mode, 0.3)(quality)
        assert lab.tolist() == [0] * 5 and idx.tolist() == [0] * 5


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown LOW_QUALITY_MODE 'mmdetection'"):
        build_matcher(THRESHOLDS, LABELS, True, "mmdetection")


def _mmdet_assign(quality, pos_thr, neg_thr, min_pos, gt_max_assign_all):
    """mmdet's MaxIoUAssigner.assign_wrt_overlaps, step by step (mmdet/models/task_modules/assigners/
    max_iou_assigner.py): -1 ignore, 0 negative, i + 1 positive for GT i."""
    num_gt, num_anchors = quality.shape
    assigned = [-1] * num_anchors
    for a in range(num_anchors):
        column = [float(quality[g, a]) for g in range(num_gt)]
        best = max(column)
        if 0 <= best < neg_thr:
            assigned[a] = 0
        if best >= pos_thr:
            assigned[a] = column.index(best) + 1
    for g in range(num_gt):
        row = [float(v) for v in quality[g]]
        best = max(row)
        if best >= min_pos:
            if gt_max_assign_all:
                for a in range(num_anchors):
                    if row[a] == best:
                        assigned[a] = g + 1
            else:
                assigned[row.index(best)] = g + 1
    return assigned


def _as_mmdet(matches, labels):
    return [int(m) + 1 if int(lab) == 1 else (0 if int(lab) == 0 else -1) for m, lab in zip(matches, labels)]


@pytest.mark.parametrize("gt_max_assign_all", [True, False])
def test_random_cases_equal_mmdet(gt_max_assign_all):
    generator = torch.Generator().manual_seed(0)
    for case in range(300):
        num_gt, num_anchors = int(torch.randint(1, 6, (1,), generator=generator)), 12
        # coarse values give many ties (the cases where the two gt_max_assign_all settings differ);
        # some anchors are -1, mmdet's mark for anchors inside an ignore region
        quality = torch.randint(0, 6, (num_gt, num_anchors), generator=generator).float() / 10
        if case % 3 == 0:
            quality[:, torch.randint(0, num_anchors, (3,), generator=generator)] = -1.0
        matcher = MaxSimMatcher([0.3, 0.7], [0, -1, 1], True, 0.3, gt_max_assign_all=gt_max_assign_all)
        ours = _as_mmdet(*matcher(quality))
        assert ours == _mmdet_assign(quality, 0.7, 0.3, 0.3, gt_max_assign_all), (case, quality)


def test_gt_max_assign_all_off_takes_the_first_tied_anchor_only():
    quality = torch.tensor([[0.4, 0.4, 0.1]])
    on = MaxSimMatcher(THRESHOLDS, LABELS, True, 0.3, gt_max_assign_all=True)(quality)[1]
    off = MaxSimMatcher(THRESHOLDS, LABELS, True, 0.3, gt_max_assign_all=False)(quality)[1]
    assert on.tolist() == [1, 1, 0]
    assert off.tolist() == [1, -1, 0]  # the second tied anchor stays ignored (0.3 <= 0.4 < 0.7)


def test_ignore_anchors_stay_ignored():
    # anchor 1 and 2 lie in an ignore region (quality -1 for every GT): neither negative nor an assert
    quality = torch.tensor([[0.9, -1.0, -1.0, 0.1], [0.2, -1.0, -1.0, 0.0]])
    matches, labels = MaxSimMatcher(THRESHOLDS, LABELS, True, 0.3)(quality)
    assert labels.tolist() == [1, -1, -1, 0]
