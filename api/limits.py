"""The API's connection limits, from the environment (`llmsched api` sets them from its flags): read by the
gunicorn master (to refuse a bad value at start), the worker (api/worker.py) and the select endpoint."""

from __future__ import annotations

from collections.abc import Mapping

ENV_READ_TIMEOUT = "LLMSCHED_API_READ_TIMEOUT"
ENV_PER_SOURCE = "LLMSCHED_API_MAX_CONNECTIONS_PER_SOURCE"
READ_TIMEOUT_S = 1.0
PER_SOURCE = 256


def limits_from_env(env: Mapping[str, str]) -> tuple[float, int]:
    """(read timeout in seconds, connections per source and worker); ValueError naming the variable otherwise."""
    raw_timeout, raw_cap = env.get(ENV_READ_TIMEOUT) or "", env.get(ENV_PER_SOURCE) or ""
    try:
        timeout = float(raw_timeout) if raw_timeout else READ_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{ENV_READ_TIMEOUT}: {raw_timeout!r} is not a number of seconds") from None
    if not 0 < timeout <= 60:
        raise ValueError(f"{ENV_READ_TIMEOUT}: must be > 0 and <= 60 seconds, got {raw_timeout!r}")
    if raw_cap and not (raw_cap.isascii() and raw_cap.isdigit() and int(raw_cap) > 0):
        raise ValueError(f"{ENV_PER_SOURCE}: {raw_cap!r} is not a positive whole number")
    return timeout, int(raw_cap) if raw_cap else PER_SOURCE
