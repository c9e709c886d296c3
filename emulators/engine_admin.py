"""Admin API of the engine emulator, under `/_emulator/` (never authenticated): JSON in, JSON out.

Tests use it to pin metric values regardless of the simulated load, to break `/metrics` in the ways real
servers break (500, hang, garbage, partial or truncated body), and to change speed or auth at run time.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from llmsched.emulators.admin_http import admin_body, admin_error
from llmsched.emulators.engine_openai import STATE_KEY
from llmsched.emulators.engine_sim import EngineCore, parse_speed
from llmsched.emulators.engine_state import METRICS_MODES, EngineState

FORCEABLE = ("waiting", "running", "kv")


def _targets(state: EngineState, engine: Any) -> list[EngineCore]:
    if engine is None:
        return state.cores
    idx = int(engine)
    if not 0 <= idx < len(state.cores):
        raise web.HTTPBadRequest(text=f'{{"error": "no engine {idx}"}}', content_type="application/json")
    return [state.cores[idx]]


def _snapshot(state: EngineState) -> dict[str, Any]:
    return {
        "engine": state.spec.engine,
        "model": state.spec.model,
        "speed": state.spec.speed,
        "metrics_mode": state.metrics_mode,
        "error_status": state.error_status,
        "engines": [
            {
                "index": c.index,
                "waiting": len(c.waiting),
                "running": len(c.running),
                "kv_used_tokens": c.kv_used,
                "kv_capacity_tokens": c.kv_capacity,
                "forced": dict(c.forced),
                "counters": dict(c.counters),
                "finished": dict(c.finished),
                "prefix_cache": {
                    "block_size": c.block_size,
                    "cached_blocks": len(c.prefix),  # held by running sequences + free (evictable)
                    "held_blocks": len(c.prefix.pinned),
                    "evictions": c.prefix.evictions,
                },
            }
            for c in state.cores
        ],
    }


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(_snapshot(request.app[STATE_KEY]))


async def force_metrics(request: web.Request) -> web.Response:
    """Body {"engine"?: i, "waiting"?: n, "running"?: n, "kv"?: 0..1}; a null value clears that override."""
    state = request.app[STATE_KEY]
    body = await admin_body(request)
    try:
        for core in _targets(state, body.get("engine")):
            for key in FORCEABLE:
                if key in body:
                    if body[key] is None:
                        core.forced.pop(key, None)
                    else:
                        core.forced[key] = float(body[key])
    except (TypeError, ValueError) as exc:
        return admin_error(400, str(exc))
    return web.json_response(_snapshot(state))


async def clear_metrics(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    for core in _targets(state, request.query.get("engine")):
        core.forced.clear()
    return web.json_response(_snapshot(state))


async def set_mode(request: web.Request) -> web.Response:
    """Body {"mode": ok|error|hang|garbage|partial|truncated|quirky, "status"?: 500}."""
    state = request.app[STATE_KEY]
    body = await admin_body(request)
    mode = body.get("mode", "ok")
    if mode not in METRICS_MODES:
        return admin_error(400, f"mode must be one of {METRICS_MODES}")
    state.metrics_mode = mode
    state.error_status = int(body.get("status", 500))
    return web.json_response(_snapshot(state))


async def set_engine(request: web.Request) -> web.Response:
    """Body: any of {"speed": "fast"|"slow"|float, "api_key": str|null, "basic_auth": [user, pw]|null}."""
    state = request.app[STATE_KEY]
    body = await admin_body(request)
    try:
        if "speed" in body:
            state.spec.speed = parse_speed(body["speed"])
            for core in state.cores:
                core.speed = state.spec.speed
        if "api_key" in body:
            state.spec.api_key = body["api_key"] or None
        if "basic_auth" in body:
            pair = body["basic_auth"]
            state.spec.basic_auth = (str(pair[0]), str(pair[1])) if pair else None
    except (TypeError, ValueError, IndexError) as exc:
        return admin_error(400, str(exc))
    return web.json_response(_snapshot(state))


async def reset_prefix_cache(request: web.Request) -> web.Response:
    """Drop every cached block no running request holds (what vLLM's /reset_prefix_cache does)."""
    state = request.app[STATE_KEY]
    for core in _targets(state, request.query.get("engine")):
        core.prefix.clear()
    return web.json_response(_snapshot(state))


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/state", get_state)
    app.router.add_post("/_emulator/metrics", force_metrics)
    app.router.add_delete("/_emulator/metrics", clear_metrics)
    app.router.add_post("/_emulator/mode", set_mode)
    app.router.add_post("/_emulator/engine", set_engine)
    app.router.add_delete("/_emulator/prefix_cache", reset_prefix_cache)
