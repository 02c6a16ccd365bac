"""`python -m llmft.train --config FILE` = `llmft train --config FILE` (each torchrun rank runs this)."""

import sys

from llmft.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
