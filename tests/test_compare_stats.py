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


def test_wilson_is_honest_at_0_and_100_percent_with_few_items():
    from evalkit.compare.stats import value_interval, wilson

    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)  # not 100 ± 0
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(0, 0) is None
    # A card value at 100% with a recorded stderr of 0 still gets an interval of width > 0.
    low, high = value_interval(1.0, 0.0, 10)
    assert high == 1.0 and low < 0.8
    # A non-proportion keeps the normal interval.
    assert value_interval(3.0, 0.5, 100) == pytest.approx((3.0 - 1.96 * 0.5, 3.0 + 1.96 * 0.5), abs=1e-3)


def test_tango_interval_does_not_collapse_when_no_item_changed():
    from evalkit.compare.stats import tango_interval, tango_margin_p, tango_z

    # No discordant pair: the score interval's bound solves n d / (1 - d) = z^2, i.e. d = z^2 / (n + z^2).
    z2 = 1.959964 ** 2
    for n in (20, 100, 400):
        low, high = tango_interval(0, 0, n)
        assert high == pytest.approx(z2 / (n + z2), rel=1e-4) and low == pytest.approx(-high, rel=1e-6)
    # Symmetry and monotonicity of the statistic.
    assert tango_z(7, 3, 100, 0.02) == pytest.approx(-tango_z(3, 7, 100, -0.02))
    assert tango_z(7, 3, 100, 0.0) > tango_z(7, 3, 100, 0.02) > tango_z(7, 3, 100, 0.05)
    # At the margin: the two one-sided p-values are complementary.
    within, beyond = tango_margin_p(30, 2, 200, 0.01)
    assert within + beyond == pytest.approx(1.0) and beyond < 1e-4


def test_items_needed_settles_a_simulated_row_most_of_the_time():
    """At the estimated n, a row whose true drop is the observed one is settled (pass) in
    about the intended 80% of simulated runs."""
    from evalkit.compare.stats import items_needed, tango_margin_p

    p_down, p_up, margin, alpha = 0.04, 0.04, 0.02, 0.025  # no true drop, 8% of items flip either way
    n = items_needed(0.0, p_down + p_up, margin, alpha, binary=True)
    rng = np.random.default_rng(5)
    settled = 0
    for _ in range(300):
        flips = rng.multinomial(n, [p_down, p_up, 1 - p_down - p_up])
        settled += tango_margin_p(int(flips[0]), int(flips[1]), n, margin)[0] < alpha
    assert 0.7 < settled / 300 < 0.92, (n, settled)
