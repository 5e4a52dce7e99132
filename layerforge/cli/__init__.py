"""The command-line interface (Typer + Rich). Thin: every command calls the library."""
