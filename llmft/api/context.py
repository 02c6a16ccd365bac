"""What every view needs from the application: its settings."""

from flask import current_app

from llmft.settings import Settings


def settings() -> Settings:
    return current_app.config["SETTINGS"]
