"""gunicorn settings for production: `gunicorn -c llmft/api/gunicorn_conf.py 'llmft.api.app:create_app()'`."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# One process: the inference engine (the model weights) lives in it; each more process holds another copy.
# Threads serve concurrent requests; a streaming answer holds one for its whole length.
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
worker_class = "gthread"
timeout = 120
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'  # no headers: API keys never reach the log
