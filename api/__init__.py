"""The decision API served to BIG-IP: a stateless Flask app; any number of replicas share one Redis."""

from llmsched.api.app import create_app

__all__ = ["create_app"]
