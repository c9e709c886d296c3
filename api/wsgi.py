"""The WSGI entry point for gunicorn (`gunicorn -c python:llmsched.api.gunicorn_conf llmsched.api.wsgi:app`)."""

import os

from llmsched.api.app import create_app
from llmsched.shared.logging import setup_logging

setup_logging(
    "api",
    os.environ.get("LLMSCHED_LOG_LEVEL", "INFO"),
    os.environ.get("LLMSCHED_LOG_FORMAT", "text"),
    intercept_stdlib=False,
)
app = create_app()
