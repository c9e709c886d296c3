"""The WSGI entry point for gunicorn (`gunicorn -c python:api.gunicorn_conf api.wsgi:app`)."""
import os

from api.app import create_app
from shared.logging import setup_logging

setup_logging("api", os.environ.get("LLMSCHED_LOG_LEVEL", "INFO"), os.environ.get("LLMSCHED_LOG_FORMAT", "text"),
              intercept_stdlib=False)
app = create_app()
