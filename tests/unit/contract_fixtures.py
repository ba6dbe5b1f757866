"""A small, hand-made dataset that satisfies data contract v1 in every rule.

``valid_frames()`` returns fresh copies of the seven tables, so a test can break one thing
and check that validation reports exactly that. Other test modules may reuse it::

    from tests.unit.contract_fixtures import valid_frames   # or: from contract_fixtures import
"""

from __future__ import annotations

import pandas as pd

TS = pd.Timestamp


def valid_frames() -> dict[str, pd.DataFrame]:
    """The seven tables of a tiny valid dataset.

    2 regions; 5 customers (0005 is a prospect who never sent); 2 campaigns; 4 coupons (K004
    never redeemed); 6 shipments (3 with a coupon); 4 survey responses; 4 assignments.
    """
    regions = pd.DataFrame(
        {
            "region_id": ["guangxi", "shanxi"],
            "name_zh": ["广西", "山西"],
            "name_en": ["Guangxi", "Shanxi"],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": ["0001", "0002", "0003", "0004", "0005"],
            "region_id": ["guangxi", "guangxi", "shanxi", "shanxi", "guangxi"],
            "known_since": pd.to_datetime(
                ["2021-12-01", "2022-01-02", "2021-06-30", "2022-02-01", "2022-03-15"]
            ),
            "segment": ["campus", "office", "residential", "other", "hospital"],
            "wechat_contact": [True, False, True, False, True],
            # an extra column: kept as a covariate
            "age_band": ["18-24", "25-34", "35-44", None, "45-54"],
        }
    )
    campaigns = pd.DataFrame(
        {
            "campaign_id": ["C01", "C02"],
            "name": ["三月三 寄件优惠", "春节 年货寄递"],
            "region_id": ["guangxi", None],
            "theme": ["sanyuesan", "spring_festival"],
            "start_date": pd.to_datetime(["2022-04-01", "2022-01-10"]),
            "end_date": pd.to_datetime(["2022-04-10", "2022-01-31"]),
            "level": ["provincial", "national"],
            "target_segment": ["campus", None],
            "coupon_threshold": [12.0, None],
            "coupon_face_value": [3.0, None],
            "fixed_cost": [5000.0, None],
        }
    )
    coupons = pd.DataFrame(
        {
            "coupon_id": ["K001", "K002", "K003", "K004"],
            "campaign_id": ["C01", "C01", None, "C01"],
            "customer_id": ["0001", None, "0003", None],
            "issued_at": [
                TS("2022-04-01 09:00"),
                TS("2022-04-01 09:00"),
                TS("2022-01-05 10:00"),
                TS("2022-04-02 15:00"),
            ],
            "expires_at": [
                TS("2022-04-30 23:59"),
                TS("2022-04-30 23:59"),
                TS("2022-02-05 10:00"),
                TS("2022-04-30 23:59"),
            ],
            "threshold": [12.0, 12.0, 21.0, 12.0],
            "face_value": [3.0, 3.0, 5.0, 3.0],
            "issue_channel": ["wechat", "counter", "door_to_door", "wechat"],
        }
    )
    shipments = pd.DataFrame(
        {
            "shipment_id": ["S0001", "S0002", "S0003", "S0004", "S0005", "S0006"],
            "customer_id": ["0001", "0001", "0002", "0003", "0003", "0004"],
            "region_id": ["guangxi", "guangxi", "guangxi", "shanxi", "shanxi", "shanxi"],
            "sent_at": [
                TS("2022-04-02 10:15"),
                TS("2022-05-03 16:40"),
                TS("2022-04-05 11:00"),
                TS("2022-01-20 09:30"),
                TS("2022-03-01 14:00"),
                TS("2022-02-03 08:05"),
            ],
            "channel": ["station", "counter", "pickup_point", "station", "online", "counter"],
            "product": ["express", "express", "economy", "express", "express", "economy"],
            "list_price": [18.0, 22.0, 12.0, 25.0, 18.0, 10.0],
            "discount": [3.0, 0.0, 3.0, 5.0, 0.0, 0.0],
            "revenue": [15.0, 22.0, 9.0, 20.0, 18.0, 10.0],
            "coupon_id": ["K001", None, "K002", "K003", None, None],
            "campaign_id": ["C01", None, "C01", "C02", None, None],
            "payment": ["epay", "cash", "stored_value", "epay", "epay", "cash"],
        }
    )
    survey = pd.DataFrame(
        {
            "response_id": ["R1", "R2", "R3", "R4"],
            "region_id": ["guangxi", "guangxi", "shanxi", "shanxi"],
            "surveyed_at": pd.to_datetime(["2022-06-01", "2022-06-02", "2022-06-01", "2022-06-03"]),
            "customer_id": ["0001", None, "0003", None],
            "weight": [120.5, 80.0, 200.0, 150.0],
            "stratum": ["urban", "rural", "urban", "urban"],
            "cluster": ["A", "B", "C", "C"],
            "coupon_influenced": pd.array([True, None, False, True], dtype="boolean"),
            "first_time_sender": [False, True, False, True],
            "aware_of_campaign": [True, True, False, False],
            "satisfaction": pd.array([5, 4, None, 3], dtype="Int64"),
        }
    )
    assignments = pd.DataFrame(
        {
            "experiment_id": ["E1", "E1", "E1", "E2"],
            "customer_id": ["0001", "0002", "0003", "0001"],
            "arm": ["12-3", "control", "21-5", "control"],
            "assigned_at": [TS("2022-03-25")] * 3 + [TS("2022-06-01")],
        }
    )
    return {
        "regions": regions,
        "customers": customers,
        "shipments": shipments,
        "coupons": coupons,
        "campaigns": campaigns,
        "survey": survey,
        "assignments": assignments,
    }


VALID_META = {"name": "hand-made", "currency": "CNY", "period": ["2022-01-01", "2022-12-31"]}
