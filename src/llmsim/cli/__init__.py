"""The llmsim command line (typer)."""
