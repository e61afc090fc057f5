"""The command line: click commands that parse options, call a service, render and exit."""

from securecase.cli.main import main

__all__ = ["main"]
