"""gunicorn settings for a checkout: `gunicorn -c deploy/gunicorn.conf.py llmsched.api.wsgi:app`
(they live in the package, api/gunicorn_conf.py, so `llmsched api` finds them in an installed copy too)."""

from llmsched.api.gunicorn_conf import *  # noqa: F403
