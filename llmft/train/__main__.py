"""`python -m llmft.train --config FILE` (the original README's form) = `llmft train --config FILE`."""

import sys

from llmft.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
