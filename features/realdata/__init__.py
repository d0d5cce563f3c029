"""Feast repositories for the real evaluation datasets (Olist, FreshRetailNet).

Small files in Feast's style: ``entities``, ``olist_views``, ``fresh_views`` and
``services`` define objects; ``olist_tables`` / ``fresh_tables`` compute the parquet
tables the file sources read; ``store`` opens a repository in a work directory.
"""
