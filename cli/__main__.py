"""`python -m prefect_greenlight.cli ...` is `greenlight ...`."""

import sys

from prefect_greenlight.cli.main import entry

if __name__ == "__main__":
    sys.exit(entry())
