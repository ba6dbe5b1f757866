"""The 31 provincial-level regions of mainland China, with Chinese and English names.

``region_id`` is the lower-case pinyin (``inner_mongolia`` for 内蒙古; ``shaanxi`` for 陕西 and
``shanxi`` for 山西, as in official romanisation).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["REGIONS", "regions_frame", "region_names"]

#: region_id -> (name_zh, name_en, kind)
REGIONS: dict[str, tuple[str, str, str]] = {
    "beijing": ("北京", "Beijing", "municipality"),
    "tianjin": ("天津", "Tianjin", "municipality"),
    "hebei": ("河北", "Hebei", "province"),
    "shanxi": ("山西", "Shanxi", "province"),
    "inner_mongolia": ("内蒙古", "Inner Mongolia", "autonomous_region"),
    "liaoning": ("辽宁", "Liaoning", "province"),
    "jilin": ("吉林", "Jilin", "province"),
    "heilongjiang": ("黑龙江", "Heilongjiang", "province"),
    "shanghai": ("上海", "Shanghai", "municipality"),
    "jiangsu": ("江苏", "Jiangsu", "province"),
    "zhejiang": ("浙江", "Zhejiang", "province"),
    "anhui": ("安徽", "Anhui", "province"),
    "fujian": ("福建", "Fujian", "province"),
    "jiangxi": ("江西", "Jiangxi", "province"),
    "shandong": ("山东", "Shandong", "province"),
    "henan": ("河南", "Henan", "province"),
    "hubei": ("湖北", "Hubei", "province"),
    "hunan": ("湖南", "Hunan", "province"),
    "guangdong": ("广东", "Guangdong", "province"),
    "guangxi": ("广西", "Guangxi", "autonomous_region"),
    "hainan": ("海南", "Hainan", "province"),
    "chongqing": ("重庆", "Chongqing", "municipality"),
    "sichuan": ("四川", "Sichuan", "province"),
    "guizhou": ("贵州", "Guizhou", "province"),
    "yunnan": ("云南", "Yunnan", "province"),
    "tibet": ("西藏", "Tibet", "autonomous_region"),
    "shaanxi": ("陕西", "Shaanxi", "province"),
    "gansu": ("甘肃", "Gansu", "province"),
    "qinghai": ("青海", "Qinghai", "province"),
    "ningxia": ("宁夏", "Ningxia", "autonomous_region"),
    "xinjiang": ("新疆", "Xinjiang", "autonomous_region"),
}


def regions_frame(region_ids: list[str] | None = None) -> pd.DataFrame:
    """The ``regions`` table of the data contract for ``region_ids`` (all 31 when None).

    Raises
    ------
    KeyError
        For an unknown region id, listing the known ones.
    """
    ids = list(REGIONS) if region_ids is None else list(region_ids)
    unknown = [r for r in ids if r not in REGIONS]
    if unknown:
        raise KeyError(f"unknown region id(s) {unknown}; known: {', '.join(REGIONS)}")
    return pd.DataFrame(
        {
            "region_id": ids,
            "name_zh": [REGIONS[r][0] for r in ids],
            "name_en": [REGIONS[r][1] for r in ids],
        }
    )


def region_names(region_id: str) -> str:
    """``"广西 Guangxi"``: both names, as reports show them."""
    zh, en, _ = REGIONS[region_id]
    return f"{zh} {en}"
