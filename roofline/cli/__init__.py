"""The `roofline` command line: a typer app (`roofline.cli.app`) with one module per command group, one
shared set of options and one pair of consoles (`roofline.cli.common`). Nothing imports this package."""
from roofline.cli.app import app, entry, main

__all__ = ["app", "entry", "main"]
