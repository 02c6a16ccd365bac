"""Data preparation: parse -> validate -> normalize -> clean -> split -> render -> tokenize -> pack."""
