"""Uploaded datasets: validated on arrival, stored under the tenant, previewed, deleted."""
