"""``python -m instit.bench run|score ...`` (also ``accelerate launch -m instit.bench ...``)."""

import sys

from instit.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
