"""Base models: the offline tiny model, name resolution, tokenizer loading."""
