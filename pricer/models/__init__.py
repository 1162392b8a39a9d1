"""Model families. Each module holds one family; all share the `Pricer` interface."""

from pricer.models.base import INPUT_COLUMNS, Pricer, PriceReport

__all__ = ["INPUT_COLUMNS", "PriceReport", "Pricer"]
