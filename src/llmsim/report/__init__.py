"""Rendering of results: rich tables for the terminal, JSON / CSV / Parquet for machines."""
