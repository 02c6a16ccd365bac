#!/bin/sh
# The container's entry point: migrate the database, then run the API, a worker, or any command.
#   llmft-start api       gunicorn with llmft/api/gunicorn_conf.py (1 process x 32 threads: the
#                         inference engine holds the weights in that process)
#   llmft-start worker    a job worker (Celery + lease reaper); WORKER_NAME names it
set -eu
umask 077  # the database, uploads and models under $LLMFT_HOME: this user's alone (0600 files, 0700 folders)
llmft db upgrade
case "${1:-api}" in
  api) exec gunicorn -c python:llmft.api.gunicorn_conf 'llmft.api.app:create_app()' ;;
  worker) exec llmft worker --name "${WORKER_NAME:-worker}" ;;
  *) exec "$@" ;;
esac
