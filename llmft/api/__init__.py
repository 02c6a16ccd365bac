"""The REST API: a thin HTTP layer over the service functions."""
