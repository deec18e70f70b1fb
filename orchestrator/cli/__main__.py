"""`python -m orchestrator.cli`: the `podium` command without its console script."""
import sys

from orchestrator.cli.main import main

if __name__ == "__main__":  # not when a package walk imports every module
    sys.exit(main())
