"""China festival calendar: the one vocabulary of festival keys, campaign themes and holidays.

The keys below are the ``theme`` values of the ``campaigns`` table (data contract v1).
"""

from __future__ import annotations

__all__ = ["FESTIVALS", "CAMPAIGN_ONLY_THEMES", "THEMES"]

#: festival key -> (name_zh, name_en); festivals that ``festival_calendar`` places on dates.
FESTIVALS: dict[str, tuple[str, str]] = {
    "new_year": ("元旦", "New Year's Day"),
    "spring_festival": ("春节", "Spring Festival"),
    "lantern": ("元宵节", "Lantern Festival"),
    "womens_day": ("三八妇女节", "Women's Day"),
    "sanyuesan": ("壮族三月三", "Sanyuesan folk-song festival"),
    "qingming": ("清明节", "Qingming Festival"),
    "labour_day": ("劳动节", "Labour Day"),
    "mothers_day": ("母亲节", "Mother's Day"),
    "dragon_boat": ("端午节", "Dragon Boat Festival"),
    "shopping_618": ("618购物节", "618 shopping festival"),
    "fathers_day": ("父亲节", "Father's Day"),
    "qixi": ("七夕", "Qixi Festival"),
    "back_to_school": ("开学季", "Back to school"),
    "mid_autumn": ("中秋节", "Mid-Autumn Festival"),
    "national_day": ("国庆节", "National Day"),
    "double_11": ("双十一", "Double 11"),
    "double_12": ("双十二", "Double 12"),
}

#: themes a campaign may have that are not festivals.
CAMPAIGN_ONLY_THEMES: dict[str, tuple[str, str]] = {
    "weekend": ("周末优惠", "Weekend promotion"),
    "fresh_produce": ("生鲜寄递", "Fresh produce sending"),
    "other": ("其他", "Other"),
}

#: every allowed campaign theme -> (name_zh, name_en)
THEMES: dict[str, tuple[str, str]] = {**FESTIVALS, **CAMPAIGN_ONLY_THEMES}
