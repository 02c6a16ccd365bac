"""llmft: fine-tune, evaluate, version and serve Hugging Face causal LMs on your own data."""

__version__ = "0.1.0"
