"""The ``securecase`` console script and ``python -m securecase``."""

from securecase.cli.main import main

if __name__ == "__main__":
    main()
