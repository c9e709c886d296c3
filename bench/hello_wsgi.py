"""The reference of `make bench-api`: a bare WSGI hello-world, served by `gunicorn -w 2` (sync) in the same run,
so the API's figures can be read against what gunicorn itself costs on this machine at that moment."""


def app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
