"""``python -m instit.bench run|score ...`` (also ``accelerate launch -m instit.bench ...``)."""

import sys

from instit.bench.cli import main

sys.exit(main())
