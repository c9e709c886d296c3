"""`python -m llmsched ...`: the same as the `llmsched` command."""

import sys

from llmsched.cli.main import main

sys.exit(main())
