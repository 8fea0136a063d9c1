"""`python -m services.flagctl list | set NAME VALUE --reason ...` (make flags, make flag-set)."""

import sys

from eventbus.flags.cli import main
from services.flags import ALL

if __name__ == "__main__":
    sys.exit(main(ALL))
