"""Validation of request bodies and query parameters, with errors that name the field and the problem.

Error bodies keep the original's FastAPI shapes (`{"detail": "..."}` for 400, `{"detail": [{type, loc, msg}]}` for
422) so tools written against the original keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from llmsched.shared.prefix_index import MAX_FINGERPRINTS

MAX_MEMBERS = 10_000  # far above any BIG-IP pool; bounds the work one request can ask for
MAX_ITERATIONS = 100_000  # simulate / analyze
MAX_MODEL_CHARS = 256
_HEX = frozenset("0123456789abcdefABCDEF")


class RequestError(Exception):
    def __init__(self, status: int, detail) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ScheduleRequest:
    pool_name: str
    partition: str
    members: list[str]
    model: str | None = None
    prefix: tuple[str, ...] = ()  # the iRule's prompt fingerprints, lowercase, leading first

    @property
    def pool_key(self) -> str:
        return f"{self.pool_name}:{self.partition}"


def _problem(kind: str, loc: list, msg: str) -> dict:
    return {"type": kind, "loc": ["body", *loc], "msg": msg}


def parse_schedule_request(raw: bytes) -> ScheduleRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(422, [_problem("json_invalid", [], f"JSON decode error: {exc}")]) from None
    if not isinstance(body, dict):
        raise RequestError(422, [_problem("model_attributes_type", [], "Input should be a JSON object")])
    problems = []
    for name in ("pool_name", "partition"):
        if name not in body:
            problems.append(_problem("missing", [name], "Field required"))
        elif not isinstance(body[name], str):
            problems.append(_problem("string_type", [name], "Input should be a valid string"))
    members = body.get("members")
    if "members" not in body:
        problems.append(_problem("missing", ["members"], "Field required"))
    elif not isinstance(members, list):
        problems.append(_problem("list_type", ["members"], "Input should be a valid list"))
    else:
        if len(members) > MAX_MEMBERS:
            problems.append(_problem("too_long", ["members"], f"List should have at most {MAX_MEMBERS} items"))
        problems += [
            _problem("string_type", ["members", i], "Input should be a valid string")
            for i, m in enumerate(members)
            if not isinstance(m, str)
        ][:20]
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        problems.append(_problem("string_type", ["model"], "Input should be a valid string"))
    elif model is not None and len(model) > MAX_MODEL_CHARS:
        problems.append(
            _problem("string_too_long", ["model"], f"String should have at most {MAX_MODEL_CHARS} characters")
        )
    prefix, prefix_problems = _fingerprints(body.get("prefix"))
    problems += prefix_problems
    if problems:
        raise RequestError(422, problems)
    for name in ("pool_name", "partition", "members"):
        if not body[name]:
            raise RequestError(400, f"{name} cannot be empty")
    return ScheduleRequest(body["pool_name"], body["partition"], body["members"], model or None, prefix)


def _fingerprints(value) -> tuple[tuple[str, ...], list[dict]]:
    """The optional `prefix` field: at most MAX_FINGERPRINTS strings of 16 hex digits (deploy/f5/README.md
    section 6); absent, null or [] mean no hint."""
    if value is None:
        return (), []
    if not isinstance(value, list):
        return (), [_problem("list_type", ["prefix"], "Input should be a valid list")]
    if len(value) > MAX_FINGERPRINTS:
        return (), [_problem("too_long", ["prefix"], f"List should have at most {MAX_FINGERPRINTS} items")]
    bad = [
        _problem("string_pattern_mismatch", ["prefix", i], "Input should be a string of 16 hex digits")
        for i, fp in enumerate(value)
        if not (isinstance(fp, str) and len(fp) == 16 and _HEX.issuperset(fp))
    ][:20]
    return (() if bad else tuple(fp.lower() for fp in value)), bad


def parse_iterations(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise RequestError(400, f"iterations must be an integer, got {text[:40]!r}") from None
    if not 1 <= value <= MAX_ITERATIONS:
        raise RequestError(400, f"iterations must be between 1 and {MAX_ITERATIONS}, got {value}")
    return value
