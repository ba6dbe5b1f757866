"""A small random dataset satisfying data contract v1, for the report tests.

Two regions, a few hundred customers each, two years of shipments with coupons and campaigns,
and a survey: enough for every report section to run, small enough to aggregate in well under a
second. Customer ids carry a recognisable prefix (``CUSTID``) so tests can search reports for
them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS = ["office", "campus", "mall", "residential", "other"]
CHANNELS = ["station", "counter", "pickup_point", "online"]


def report_frames(
    regions: tuple[str, ...] = ("guangxi", "shanxi"), n_customers: int = 300, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The seven contract tables of a random two-year dataset."""
    from promo_analysis.regions import regions_frame

    rng = np.random.default_rng(seed)
    customers, shipments, coupons, campaigns, survey = [], [], [], [], []
    start = pd.Timestamp("2021-01-01")
    days = 730
    campaigns.append({
        "campaign_id": "N-SF-2022", "name": "春节 年货寄递", "region_id": None,
        "theme": "spring_festival", "start_date": pd.Timestamp("2022-01-10"),
        "end_date": pd.Timestamp("2022-01-25"), "level": "national", "target_segment": None,
        "coupon_threshold": 12.0, "coupon_face_value": 3.0, "fixed_cost": 2000.0,
    })
    ship_no = 0
    for r_i, region in enumerate(regions):
        for c_no, (theme, s, e) in enumerate([
            ("womens_day", "2022-03-05", "2022-03-10"),
            ("double_11", "2022-11-05", "2022-11-14"),
        ]):
            campaigns.append({
                "campaign_id": f"{region[:2].upper()}-{c_no}", "name": f"{region} {theme}",
                "region_id": region, "theme": theme, "start_date": pd.Timestamp(s),
                "end_date": pd.Timestamp(e), "level": "provincial", "target_segment": "campus",
                "coupon_threshold": 21.0, "coupon_face_value": 5.0, "fixed_cost": 1000.0,
            })
        region_camps = [c for c in campaigns if c["region_id"] in (None, region)]
        for i in range(n_customers):
            cid = f"CUSTID{r_i}{i:05d}"
            seg = SEGMENTS[rng.integers(len(SEGMENTS))]
            wechat = bool(rng.random() < 0.4)
            known = start - pd.Timedelta(days=int(rng.integers(0, 300)))
            customers.append({
                "customer_id": cid, "region_id": region, "known_since": known,
                "segment": seg, "wechat_contact": wechat,
                "parcels_received": int(rng.poisson(3)),
            })
            propensity = 0.15 + 0.3 * wechat
            coupon = None
            if rng.random() < propensity:
                camp = region_camps[rng.integers(len(region_camps))]
                issued = camp["start_date"] + pd.Timedelta(hours=9)
                coupon = {
                    "coupon_id": f"K{r_i}{i:05d}", "campaign_id": camp["campaign_id"],
                    "customer_id": cid, "issued_at": issued,
                    "expires_at": issued + pd.Timedelta(days=30),
                    "threshold": camp["coupon_threshold"], "face_value": camp["coupon_face_value"],
                    "issue_channel": "wechat",
                }
                coupons.append(coupon)
            n = int(rng.poisson(4 + 2 * wechat)) if rng.random() < 0.8 else 0
            times = sorted(start + pd.to_timedelta(rng.uniform(0, days, n), unit="D"))
            if coupon is not None and rng.random() < 0.6:
                t = coupon["issued_at"] + pd.Timedelta(days=float(rng.uniform(0, 20)))
                times = sorted([*times, t])
            used = False
            for t in times:
                price = float(np.round(rng.uniform(10, 40), 1))
                use = (coupon is not None and not used
                       and coupon["issued_at"] <= t <= coupon["expires_at"]
                       and price >= coupon["threshold"])
                discount = coupon["face_value"] if use else 0.0
                used = used or use
                ship_no += 1
                shipments.append({
                    "shipment_id": f"S{ship_no:07d}", "customer_id": cid, "region_id": region,
                    "sent_at": t.floor("min"), "channel": CHANNELS[rng.integers(len(CHANNELS))],
                    "product": "express" if rng.random() < 0.7 else "economy",
                    "list_price": price, "discount": discount, "revenue": price - discount,
                    "coupon_id": coupon["coupon_id"] if use else None,
                    "campaign_id": coupon["campaign_id"] if use else None,
                    "payment": "epay",
                })
        for j in range(80):
            survey.append({
                "response_id": f"R{r_i}{j:04d}", "region_id": region,
                "surveyed_at": pd.Timestamp("2022-06-01") + pd.Timedelta(days=int(j % 20)),
                "customer_id": f"CUSTID{r_i}{j:05d}" if j % 4 == 0 else None, "weight": float(rng.uniform(50, 150)),
                "stratum": f"s{j % 2}", "cluster": f"s{j % 2}-c{j % 8}",
                "coupon_influenced": bool(rng.random() < 0.5),
                "first_time_sender": bool(rng.random() < 0.3),
                "aware_of_campaign": bool(rng.random() < 0.6),
                "satisfaction": int(rng.integers(1, 6)),
            })
    return {
        "regions": regions_frame(list(regions)),
        "customers": pd.DataFrame(customers),
        "shipments": pd.DataFrame(shipments),
        "coupons": pd.DataFrame(coupons),
        "campaigns": pd.DataFrame(campaigns),
        "survey": pd.DataFrame(survey),
    }
