"""The 95% confidence interval of an accuracy drop measured on paired predictions."""
import numpy as np
import pytest
from edgesmith.export.fidelity import compare, drop_ci95_pts


def _pairs(n, only_ref, only_cand, both=0):
    """Per-image correctness of a reference and a candidate: ``only_ref`` images only the reference
    gets right, ``only_cand`` only the candidate, ``both`` both, the rest neither."""
    ref, cand = np.zeros(n, bool), np.zeros(n, bool)
    ref[:only_ref] = True
    cand[only_ref:only_ref + only_cand] = True
    ref[only_ref + only_cand:only_ref + only_cand + both] = True
    cand[only_ref + only_cand:only_ref + only_cand + both] = True
    return ref, cand


def test_only_the_images_the_models_disagree_on_widen_it():
    # 1,000 images, 18 only the reference gets right, 12 only the candidate: a 0.6 pt drop,
    # d = 0.006, half-width 1.96 * sqrt((0.03 - 0.006**2) / 1000) = 0.01073
    assert drop_ci95_pts(*_pairs(1000, 18, 12, both=600)) == pytest.approx(1.07, abs=0.005)
    # the same drop with no other flips is far tighter...
    assert drop_ci95_pts(*_pairs(1000, 6, 0, both=600)) == pytest.approx(100 * 1.96 * np.sqrt((0.006 - 0.006 ** 2) / 1000),
                                                                          abs=0.005)
    # ...and models right on the same images have no uncertainty about their difference
    assert drop_ci95_pts(*_pairs(1000, 0, 0, both=650)) == 0.0
    assert drop_ci95_pts(np.zeros(0, bool), np.zeros(0, bool)) == 0.0


def test_it_shrinks_as_one_over_root_n_and_ignores_the_sign():
    small, large = drop_ci95_pts(*_pairs(500, 15, 6)), drop_ci95_pts(*_pairs(2000, 60, 24))
    assert large == pytest.approx(small / 2, abs=0.01)
    assert drop_ci95_pts(*_pairs(500, 6, 15)) == small


def test_compare_reports_it_for_the_artifact():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    ref = np.eye(10, dtype=np.float32)[labels]
    cand = ref.copy()
    cand[:20] = np.eye(10, dtype=np.float32)[(labels[:20] + 1) % 10]  # 20 of 400 flipped to wrong
    fid = compare(ref, cand, labels)
    assert (fid["top1"], fid["reference_top1"]) == (0.95, 1.0)
    assert fid["drop_ci95_pts"] == pytest.approx(100 * 1.96 * np.sqrt((0.05 - 0.05 ** 2) / 400), abs=0.005)
