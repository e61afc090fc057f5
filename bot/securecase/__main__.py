"""The ``securecase`` console script and ``python -m securecase``."""

import gc
from typing import NoReturn


def main() -> NoReturn:
    """Run the CLI as a process (see :func:`securecase.cli.main`)."""
    # A run builds large acyclic structures and then ends: the cycle collector would only
    # rescan them, starting with the tens of thousands of objects the imports below create.
    gc.disable()
    from securecase.cli import main as run

    run()


if __name__ == "__main__":
    main()
