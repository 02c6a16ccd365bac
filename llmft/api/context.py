"""What views need from the application: its settings, and the Celery app that dispatches jobs."""

from celery import Celery
from flask import current_app

from llmft.settings import Settings


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def celery() -> Celery:
    from llmft.jobs.queue import make_celery

    app = current_app.extensions.get("llmft_celery")
    if app is None:
        app = current_app.extensions["llmft_celery"] = make_celery(settings())
    return app
