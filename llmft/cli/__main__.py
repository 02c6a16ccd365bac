"""`python -m llmft.cli ...` = `llmft ...` (`llmft serve` starts its worker this way)."""

import sys

from llmft.cli import main

sys.exit(main())
