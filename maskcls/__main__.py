"""`python -m maskcls ...` is the same as the `maskcls` console script."""
import sys

from maskcls.cli import main

sys.exit(main())
