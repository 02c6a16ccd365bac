"""`llmft serve`: the API under gunicorn (threads, so streaming responses do not block others).

    llmft serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--threads 32]

Production: `gunicorn -c llmft/api/gunicorn_conf.py 'llmft.api.app:create_app()'`.
"""

from gunicorn.app.base import BaseApplication

from llmft.api.app import create_app
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


def serve(settings: Settings, *, workers: int = 1, threads: int = 32) -> None:
    _Gunicorn(settings, {"bind": f"{settings.host}:{settings.port}", "workers": workers, "threads": threads,
                         "worker_class": "gthread", "timeout": 120, "accesslog": "-",
                         "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'}).run()
