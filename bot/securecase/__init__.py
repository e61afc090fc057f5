"""securecase: scanner reports become security cases in a git repository, gated by policy."""

__version__ = "0.1.0"
