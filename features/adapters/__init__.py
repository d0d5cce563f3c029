"""Adapters from public datasets to routecast's canonical tables.

Each adapter takes a path in the dataset's own published layout, so a user brings their
own download and nothing of it enters the repository.
"""

from features.adapters.freshretail import FreshRetailTables, load_freshretail
from features.adapters.olist import OlistTables, load_olist

__all__ = ["FreshRetailTables", "OlistTables", "load_freshretail", "load_olist"]
