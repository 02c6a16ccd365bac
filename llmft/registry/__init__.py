"""The model registry: versions with verified artifacts, lineage, metrics, cards and aliases."""
