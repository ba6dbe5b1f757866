"""Validation of a dataset against the data contract: ``validate`` and its report."""

from __future__ import annotations

__all__ = ["DataContractError"]


class DataContractError(ValueError):
    """A dataset breaks the data contract; the message lists every failing rule."""
