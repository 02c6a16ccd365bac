"""`python run.py` = `llmft serve`: the API on embedded defaults (SQLite under ./var)."""

import sys

from llmft.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
