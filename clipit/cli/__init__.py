"""The `clipit` command: a thin Typer layer over the library. One module per command."""
