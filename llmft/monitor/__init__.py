"""Monitoring: Prometheus metrics, alerts and their notifications, system readings for training."""
