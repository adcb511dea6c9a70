"""``python -m instit ...`` (also ``accelerate launch -m instit finetune ...``)."""

import sys

from instit.cli import main

sys.exit(main())
