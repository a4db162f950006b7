"""python app.py [--model DIR_OR_REPO] [--host H] [--port P] [--share]: the latent-space explorer page.

A thin wrapper, and the Hugging Face Space's `app_file`: the command is vaegan.app (installed as `vaegan-app`).
"""

import sys

from vaegan.app import DEMO_MODEL, main, parse_args  # noqa: F401 - the command's parts, as tests use them

if __name__ == "__main__":
    sys.exit(main())
