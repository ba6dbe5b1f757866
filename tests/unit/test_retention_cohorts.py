"""cohort_matrix on hand-made transactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promo_analysis.retention import cohort_matrix

TX = pd.DataFrame(
    {
        "cust": ["a", "a", "a", "b", "b", "c", "d", "d"],
        "when": pd.to_datetime(["2022-01-03", "2022-02-10", "2022-04-01", "2022-01-20",
                                "2022-01-25", "2022-02-02", "2022-02-28", "2022-03-01"]),
        "coupon": [True, False, False, False, True, True, False, False],
    }
)


def test_cohort_matrix_by_hand():
    res = cohort_matrix(TX, "cust", "when", freq="M", periods=4)
    jan, feb = pd.Timestamp("2022-01-01"), pd.Timestamp("2022-02-01")
    # January cohort {a, b}: k=1 a (Feb), k=2 nobody, k=3 a (Apr)
    assert res.count.loc[jan].tolist() == [2, 1, 0, 1]
    assert res.share.loc[jan].tolist() == [1.0, 0.5, 0.0, 0.5]
    # February cohort {c, d}: k=1 d (Mar), k=2 nobody; k=3 (May) not observed -> missing
    assert res.count.loc[feb].iloc[:3].tolist() == [2, 1, 0]
    assert np.isnan(res.share.loc[feb, 3])
    assert res.size.to_dict() == {jan: 2, feb: 2}
    avg = res.average().set_index("k")
    # k = 1 pools both cohorts: (1 + 1) / 4; k = 3 only January: 1 / 2
    assert avg.loc[1, "share"] == 0.5 and avg.loc[3, "share"] == 0.5
    assert avg.loc[1, "se"] == pytest.approx(np.sqrt(0.25 / 4))


def test_cohort_by_uses_the_first_transaction():
    res = cohort_matrix(TX, "cust", "when", freq="M", periods=2, cohort_by="coupon")
    sizes = res.size
    # first transactions: a coupon, b no coupon, c coupon, d no coupon
    assert sizes.loc[("True", pd.Timestamp("2022-01-01"))] == 1
    assert sizes.loc[("False", pd.Timestamp("2022-02-01"))] == 1
    assert res.share.index.nlevels == 2


def test_weekly_and_plot():
    import matplotlib.pyplot as plt

    res = cohort_matrix(TX, "cust", "when", freq="W", periods=3)
    assert res.count.iloc[:, 0].sum() == 4  # everyone is active in their own week
    ax = res.plot()
    assert ax.get_title().startswith("Share of cohort")
    plt.close("all")


def test_bad_input():
    with pytest.raises(ValueError, match=r"data\.when: 1 of 2 rows are missing"):
        cohort_matrix(pd.DataFrame({"cust": ["a", "b"], "when": [pd.Timestamp("2022-01-01"),
                                                                  None]}), "cust", "when")
    with pytest.raises(ValueError, match="lacks the column"):
        cohort_matrix(TX, "customer", "when")
    with pytest.raises(ValueError, match="freq must be one of"):
        cohort_matrix(TX, "cust", "when", freq="H")
