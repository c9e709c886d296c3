import random

import pytest
from flask.testing import FlaskClient

from llmsched.api.app import create_app

from tests.helpers import make_store


class SyncedClient(FlaskClient):
    """Each request first brings the worker's in-memory routing data up to date with Redis, as the change
    announcements (pub/sub) do within a tick in a running API: a test that seeds then asks never races them.
    The push itself is tested with plain clients (tests/api/test_routing_state.py)."""

    def open(self, *args, **kwargs):
        self.application.extensions["llmsched.routing"].reload()
        return super().open(*args, **kwargs)


@pytest.fixture()
def store(redis_url):
    return make_store(redis_url)


@pytest.fixture()
def client(store):
    app = create_app(store, rng=random.Random(7))
    app.test_client_class = SyncedClient
    yield app.test_client()
    app.extensions["llmsched.routing"].stop()
