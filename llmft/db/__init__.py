"""The SQL source of truth: tenants, API keys, datasets, jobs, events, metrics."""
