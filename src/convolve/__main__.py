"""`python -m convolve ...`: the same as the `convolve` console script."""

import sys

from convolve.cli import main

if __name__ == "__main__":
    sys.exit(main())
