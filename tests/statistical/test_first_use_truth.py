"""The first-use table on simulated data recovers the simulator's ground truth.

Coupons are handed out by couriers on observed covariates only, so adjustment recovers the true
effect on recipients (ATT) while the naive comparison overstates it.
"""

from __future__ import annotations

import pytest

from promo_analysis.features.first_use import experiment_table, first_use_table

COVARIATES = ["segment", "wechat_contact", "parcels_received", "tenure_days", "region_id"]


def _truth(ds, estimand="att", by="overall", group="all"):
    fu = ds.truth.first_use
    row = fu[(fu.estimand == estimand) & (fu.by == by) & (fu.group == group)]
    return float(row["value"].iloc[0]), int(row["n"].iloc[0])


@pytest.fixture(scope="module")
def table(small_ds):
    return first_use_table(small_ds, seed=0)


@pytest.fixture(scope="module")
def null_table(null_ds):
    return first_use_table(null_ds, seed=0)


def test_treated_rows_are_the_truths_treated_population(small_ds, table):
    _, n_treated = _truth(small_ds)
    assert table["got_coupon"].sum() == pytest.approx(n_treated, rel=0.02)
    by_design = table[table.got_coupon == 1]["design"].value_counts()
    for design in ("12-3", "21-5"):
        _, n = _truth(small_ds, by="design", group=design)
        assert by_design[design] == pytest.approx(n, rel=0.03)


def test_naive_difference_is_clearly_larger_than_the_true_att(small_ds, table):
    from promo_analysis import causal

    att, _ = _truth(small_ds)
    naive = causal.estimate_effect(
        table, treatment="got_coupon", outcome="sent_within_window", method="naive"
    )
    assert naive.ci_low > att


def test_aipw_covers_the_true_att(small_ds, table):
    from promo_analysis import causal

    att, _ = _truth(small_ds)
    est = causal.estimate_effect(
        table,
        treatment="got_coupon",
        outcome="sent_within_window",
        covariates=COVARIATES,
        method="aipw",
        estimand="att",
        seed=0,
    )
    assert est.covers(att), (est, att)


def test_null_scenario_shows_no_effect_after_adjustment(null_ds, null_table):
    from promo_analysis import causal

    assert _truth(null_ds)[0] == 0.0
    naive = causal.estimate_effect(
        null_table, treatment="got_coupon", outcome="sent_within_window", method="naive"
    )
    assert naive.ci_low > 0  # selection: couriers pick likely senders
    est = causal.estimate_effect(
        null_table,
        treatment="got_coupon",
        outcome="sent_within_window",
        covariates=COVARIATES,
        method="regression",
        estimand="att",
    )
    assert est.covers(0.0), est


def test_experiment_table_holds_every_participant_once(small_ds):
    # the arm comparison itself is the simulator's and experiments' tests; here: the analysis
    # table holds exactly the assigned units of each arm (all prospects at assignment)
    exp = experiment_table(small_ds)
    truth = small_ds.truth.experiments.set_index("arm")
    assert exp["customer_id"].is_unique
    counts = exp["arm"].value_counts()
    for arm, n in truth["n"].items():
        assert counts[arm] == n, arm
    assert exp.attrs["exclusions"]["sent_before_assignment"] == 0


def test_customer_clustered_aipw_covers_the_true_att(small_ds, table):
    from promo_analysis import causal

    att, _ = _truth(small_ds)
    # a not-yet-treated control row and a later treated row of the same customer
    assert table["customer_id"].duplicated().any()
    kw = dict(treatment="got_coupon", outcome="sent_within_window", covariates=COVARIATES,
              method="aipw", estimand="att", seed=0)
    plain = causal.estimate_effect(table, **kw)
    est = causal.estimate_effect(table, cluster="customer_id", **kw)
    assert est.estimate == plain.estimate
    assert est.se != plain.se
    assert est.covers(att), (est, att)
