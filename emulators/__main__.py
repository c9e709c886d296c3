"""`python -m llmsched.emulators f5|engine ...`: the same as `llmsched emulate ...`."""

from __future__ import annotations

import sys

from llmsched.emulators.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
