"""The exact bytes the original iRule sends, over a real socket, to a real gunicorn API."""

import socket

import pytest

from tests.helpers import api_process, make_store, seed


@pytest.fixture(scope="module")
def api_server(redis_server):
    with api_process(redis_server) as port:
        yield port


def irule_request(port: int, payload: str) -> bytes:
    raw = (
        f"POST /scheduler/select HTTP/1.0\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n{payload}"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(1000):
            data += chunk
    return data


def parse_like_the_irule(data: bytes) -> tuple[str, str]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no header/body separator"
    status = head.split(b"\r\n")[0].split(b" ")[1].decode()
    return status, body.decode()


def test_irule_raw_request_gets_a_200_whose_body_is_exactly_the_member(api_server, redis_url):
    seed(
        make_store(redis_url),
        {"127.0.0.1:8001": {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}},
        pool="example_pool1",
    )
    payload = '{"pool_name":"example_pool1","partition":"Common","members":["127.0.0.1:8001","127.0.0.1:8002"]}'
    data = irule_request(api_server, payload)
    status, body = parse_like_the_irule(data)
    assert (status, body) == ("200", "127.0.0.1:8001")
    assert b"content-type: text/plain; charset=utf-8" in data.lower()
    assert len(data) < 1000, "the iRule reads at most 1000 bytes"


def test_irule_raw_request_for_an_unknown_pool_gets_none(api_server, redis_url):
    payload = '{"pool_name":"Pool_vllm","partition":"Common","members":["10.1.1.1:8000","10.1.1.2:8000"]}'
    assert parse_like_the_irule(irule_request(api_server, payload)) == ("200", "none")


def test_irule_raw_request_for_a_fallback_pool_gets_fallback(api_server, redis_url):
    from llmsched.shared.config_model import FallbackConfig

    seed(
        make_store(redis_url),
        {"10.1.1.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}},
        pool="Pool_vllm",
        fallback=FallbackConfig(pool_fallback=True),
    )
    payload = '{"pool_name":"Pool_vllm","partition":"Common","members":["10.1.1.1:8000"]}'
    assert parse_like_the_irule(irule_request(api_server, payload)) == ("200", "fallback")
