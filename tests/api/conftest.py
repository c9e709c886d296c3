import random

import pytest

from llmsched.api.app import create_app

from tests.helpers import make_store


@pytest.fixture()
def store(redis_url):
    return make_store(redis_url)


@pytest.fixture()
def client(store):
    return create_app(store, rng=random.Random(7)).test_client()
