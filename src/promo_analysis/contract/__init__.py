"""The data contract (v1): table specs, vocabularies, validation and quarantine.

See ``docs/data_contract.md`` for the contract in prose.
"""

from __future__ import annotations

from promo_analysis.contract.quarantine import QuarantineResult, quarantine
from promo_analysis.contract.spec import (
    ARM_CONTROL,
    CHANNELS,
    CONTRACT,
    CONTRACT_VERSION,
    IBIS_TYPES,
    ISSUE_CHANNELS,
    LEVELS,
    OPTIONAL_TABLES,
    PAYMENTS,
    PRODUCTS,
    REQUIRED_TABLES,
    SEGMENTS,
    TABLE_ORDER,
    Column,
    TableSpec,
    coerce_frame,
    conform,
)
from promo_analysis.contract.validation import DataContractError, ValidationReport, validate

__all__ = [
    "ARM_CONTROL",
    "CHANNELS",
    "CONTRACT",
    "CONTRACT_VERSION",
    "IBIS_TYPES",
    "ISSUE_CHANNELS",
    "LEVELS",
    "OPTIONAL_TABLES",
    "PAYMENTS",
    "PRODUCTS",
    "REQUIRED_TABLES",
    "SEGMENTS",
    "TABLE_ORDER",
    "Column",
    "TableSpec",
    "coerce_frame",
    "conform",
    "DataContractError",
    "ValidationReport",
    "validate",
    "quarantine",
    "QuarantineResult",
]
