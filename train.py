"""python train.py --data-dir DIR --epochs N [--push-to-hub USER/NAME]: the training command.

A thin wrapper: the command is vaegan.train (installed as `vaegan-train`); `python train.py --help` lists the flags.
"""

import sys

from vaegan.train import HELP, field_comments, main, parse_args  # noqa: F401 - the command's parts, as tests and benchmarks use them

if __name__ == "__main__":
    sys.exit(main())
