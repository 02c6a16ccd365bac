"""`llmft serve`: the API under gunicorn (threads, so streaming responses do not block others).

    llmft serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--threads 32]

Production: `gunicorn -c python:llmft.api.gunicorn_conf 'llmft.api.app:create_app()'`, with the same options
(llmft/api/gunicorn_conf.py holds them).
"""

from gunicorn.app.base import BaseApplication

from llmft.api.app import create_app
from llmft.api.gunicorn_conf import THREADS, WORKERS, gunicorn_options
from llmft.settings import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict):
        self.settings, self.options = settings, options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(self.settings)


def serve(settings: Settings, *, workers: int = WORKERS, threads: int = THREADS) -> None:
    _Gunicorn(settings, gunicorn_options(settings, workers=workers, threads=threads)).run()
