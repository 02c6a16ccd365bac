"""Tenants, API keys and roles."""
