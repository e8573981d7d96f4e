"""The paired statistics on hand-checked cases and a seeded coverage simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.compare.stats import bootstrap_p, holm, is_binary, mcnemar_exact, paired_bootstrap, recomputed_bootstrap


def _pairs(down: int, up: int, both_right: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    base = [1] * down + [0] * up + [1] * both_right + [0] * both_wrong
    new = [0] * down + [1] * up + [1] * both_right + [0] * both_wrong
    return np.array(base, float), np.array(new, float)


def test_mcnemar_exact_on_hand_computed_tables():
    # 3 discordant one way, 13 the other: p = 2 * P(X <= 3), X ~ Bin(16, 1/2)
    # = 2 * (1 + 16 + 120 + 560) / 2**16; the concordant pairs do not matter.
    mc = mcnemar_exact(*_pairs(down=3, up=13, both_right=50, both_wrong=20))
    assert (mc.down, mc.up) == (3, 13)
    assert mc.p == pytest.approx(2 * 697 / 2**16, rel=1e-12)
    # 1 vs 9: 2 * (1 + 10) / 1024
    assert mcnemar_exact(*_pairs(9, 1, 0, 0)).p == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(*_pairs(5, 5, 10, 10)).p == 1.0  # balanced: no evidence
    assert mcnemar_exact(*_pairs(0, 0, 10, 10)).p == 1.0  # nothing changed
    assert is_binary(*_pairs(1, 2, 3, 4)) and not is_binary(np.array([0.5, 1.0]))


def test_holm_step_down_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(0.06, 1*0.04); NaN rows are not counted
    adj = holm([0.04, 0.01, math.nan, 0.03])
    assert adj[1] == pytest.approx(0.03) and adj[3] == pytest.approx(0.06) and adj[0] == pytest.approx(0.06)
    assert math.isnan(adj[2])
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_bootstrap_interval_covers_the_true_delta_in_a_seeded_simulation():
    """Paired continuous scores with a true mean difference of 0.1 and strong item effects:
    the 95% interval should cover 0.1 in about 95% of repetitions."""
    rng = np.random.default_rng(20260101)
    true_delta, reps, covered, widths = 0.1, 120, 0, []
    for rep in range(reps):
        item = rng.normal(0.5, 0.3, size=150)  # item difficulty, shared by both runs
        base = item + rng.normal(0, 0.1, size=150)
        new = item + true_delta + rng.normal(0, 0.1, size=150)
        ci = paired_bootstrap(base, new, resamples=2000, seed=rep)
        covered += ci.low <= true_delta <= ci.high
        widths.append(ci.high - ci.low)
    assert 0.89 <= covered / reps <= 0.99
    # Pairing removes the item effect: the interval is far narrower than an unpaired one would be
    # (unpaired se ~ sqrt(2 * (0.3**2 + 0.1**2) / 150) ~ 0.037 -> width ~ 0.14; paired: ~ 0.045).
    assert np.mean(widths) < 0.05


def test_bootstrap_is_seeded_and_detects_a_real_change():
    rng = np.random.default_rng(1)
    base = rng.normal(size=400)
    new = base + 0.3 + rng.normal(0, 0.5, size=400)
    a = paired_bootstrap(base, new, seed=7)
    assert a == paired_bootstrap(base, new, seed=7)
    assert a.resamples == 10_000 and a.low > 0 and a.p < 0.001
    same = paired_bootstrap(base, base, seed=7)
    assert (same.delta, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)


def test_stratified_bootstrap_is_the_macro_average_of_group_deltas():
    base = np.array([0, 0, 0, 0, 1, 1.0])
    new = np.array([1, 1, 1, 1, 1, 0.0])
    groups = ["a", "a", "a", "a", "b", "b"]
    macro = paired_bootstrap(base, new, strata=groups, resamples=2000, seed=0)
    assert macro.delta == pytest.approx((1.0 + -0.5) / 2)  # a: +1, b: -0.5
    assert paired_bootstrap(base, new, resamples=2000, seed=0).delta == pytest.approx(3 / 6)  # micro


def test_recomputed_bootstrap_agrees_with_the_per_sample_one_for_a_mean():
    rng = np.random.default_rng(3)
    base, new = rng.normal(size=200), rng.normal(0.2, 1, size=200)
    direct = paired_bootstrap(base, new, seed=5)
    recomputed = recomputed_bootstrap(200, lambda i: new[i].mean() - base[i].mean(), seed=5)
    assert recomputed.delta == pytest.approx(direct.delta)
    assert recomputed.low == pytest.approx(direct.low, abs=0.03) and recomputed.high == pytest.approx(direct.high, abs=0.03)


def test_bootstrap_p_is_two_sided_around_the_observed_delta():
    dist = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    # shifted to zero: |d - 0.3| >= 0.3 for none of them -> (1 + 0) / 6
    assert bootstrap_p(0.3, dist) == pytest.approx(1 / 6)
    assert bootstrap_p(0.0, dist) == 1.0
