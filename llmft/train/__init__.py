"""Training: a config file in, a fine-tuned adapter (or full model) out.

`python -m llmft.train --config FILE` is the same as `llmft train --config FILE`.
"""
