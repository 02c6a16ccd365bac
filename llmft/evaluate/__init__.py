"""Evaluate: perplexity, answer scores (BLEU, ROUGE-L, exact match) and reasoning checks of a fine-tune."""
