"""Admin API of the BIG-IP emulator, under `/_emulator/` (outside `/mgmt`, no auth): JSON in, JSON out.

It lets tests and demos reshape the box while clients talk to it: set a pool's members, change a member's
availability, revoke tokens, change passwords, advance the token clock, inject 5xx failures and latency.
See docs/emulators.md for every route.
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from llmsched.emulators.admin_http import admin_body, admin_error
from llmsched.emulators.f5_errors import json_response
from llmsched.emulators.f5_ltm import STATE_KEY
from llmsched.emulators.f5_members import Pool, members_from_config, pool_path
from llmsched.emulators.f5_state import F5State, pool_from_config


def _state(request: web.Request) -> F5State:
    return request.app[STATE_KEY]


def _pool_or_404(state: F5State, ref: str) -> Pool:
    pool = state.find_pool(pool_path(ref))
    if pool is None:
        raise web.HTTPNotFound(text=f'{{"error": "no pool {pool_path(ref)}"}}', content_type="application/json")
    return pool


async def get_state(request: web.Request) -> web.Response:
    state = _state(request)
    state.purge_expired()
    return json_response(
        {
            "version": state.version,
            "users": sorted(state.users),
            "partitions": sorted(state.partitions),
            "token_timeout": state.token_timeout,
            "max_token_timeout": state.max_token_timeout,
            "active_tokens": len(state.tokens),
            "clock_offset": state.clock.offset,
            "faults": asdict(state.faults),
            "pools": {p.full_path: p.to_json(state.version, expand=True) for p in state.pools.values()},
        }
    )


async def put_pool(request: web.Request) -> web.Response:
    """Create or replace a pool: body {"members": [...], "monitor": ..., "sub_path": ...}."""
    state = _state(request)
    full = pool_path(request.match_info["pool"])
    parts = full.strip("/").split("/")
    body = await admin_body(request)
    spec = {"name": parts[-1], "partition": parts[0], **body}
    if len(parts) == 3:
        spec.setdefault("sub_path", parts[1])
    try:
        pool = state.put_pool(pool_from_config(spec))
    except (KeyError, ValueError) as exc:
        return admin_error(400, f"bad pool definition: {exc}")
    return json_response(pool.to_json(state.version, expand=True))


async def delete_pool(request: web.Request) -> web.Response:
    state = _state(request)
    pool = _pool_or_404(state, request.match_info["pool"])
    del state.pools[pool.full_path]
    return json_response({"deleted": pool.full_path})


async def add_member(request: web.Request) -> web.Response:
    state = _state(request)
    pool = _pool_or_404(state, request.match_info["pool"])
    try:
        new = members_from_config(await admin_body(request), pool.partition)
    except (KeyError, ValueError) as exc:
        return admin_error(400, f"bad member definition: {exc}")
    names = {m.full_path for m in new}
    pool.members = [m for m in pool.members if m.full_path not in names] + new
    pool.generation += 1
    return json_response([m.to_json(pool.tilde_path, state.version) for m in new])


async def patch_member(request: web.Request) -> web.Response:
    """Body: {"state": "enabled|disabled|forced_offline|monitor_down|monitor_up|checking|unchecked"}, or wire
    {"session": ..., "state": ...}, and/or {"health": ..., "ratio": ..., "priorityGroup": ..., ...}."""
    state = _state(request)
    pool = _pool_or_404(state, request.match_info["pool"])
    member = pool.find_member(request.match_info["member"])
    if member is None:
        return admin_error(404, f"no member {request.match_info['member']} in {pool.full_path}")
    body = await admin_body(request)
    try:
        if "health" in body:
            member.apply_wire(None, str(body["health"]), admin=True)
        actions = body.get("actions", [])
        if isinstance(body.get("state"), str) and "session" not in body:
            try:
                member.apply_action(body["state"])
            except ValueError:
                member.apply_wire(None, body["state"], admin=True)
        elif "session" in body:
            member.apply_wire(body["session"], body.get("state"), admin=True)
        for action in actions:
            member.apply_action(str(action))
        for wire, attr in (
            ("ratio", "ratio"),
            ("priorityGroup", "priority_group"),
            ("connectionLimit", "connection_limit"),
            ("dynamicRatio", "dynamic_ratio"),
        ):
            if wire in body:
                setattr(member, attr, int(body[wire]))
        if "monitor" in body:
            member.monitor = str(body["monitor"])
    except ValueError as exc:
        return admin_error(400, str(exc))
    return json_response(member.to_json(pool.tilde_path, state.version))


async def delete_member(request: web.Request) -> web.Response:
    state = _state(request)
    pool = _pool_or_404(state, request.match_info["pool"])
    member = pool.find_member(request.match_info["member"])
    if member is None:
        return admin_error(404, f"no member {request.match_info['member']} in {pool.full_path}")
    pool.members.remove(member)
    pool.generation += 1
    return json_response({"deleted": member.full_path})


async def revoke_tokens(request: web.Request) -> web.Response:
    body = await admin_body(request)
    return json_response({"revoked": _state(request).revoke_tokens(body.get("username"))})


async def set_user(request: web.Request) -> web.Response:
    """Body {"username", "password", "local"?}: add a user or change a password (existing tokens stay valid)."""
    state = _state(request)
    body = await admin_body(request)
    if not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
        return admin_error(400, "username and password (strings) are required")
    state.set_password(body["username"], body["password"])
    if "local" in body:
        state.users[body["username"]].local = bool(body["local"])
    return json_response({"username": body["username"], "local": state.users[body["username"]].local})


async def set_faults(request: web.Request) -> web.Response:
    """Body {"fail_next": N, "status": 500|503|404|..., "path_prefix": "/mgmt/tm", "latency": seconds}."""
    faults = _state(request).faults
    body = await admin_body(request)
    try:
        for key, cast in (("fail_next", int), ("status", int), ("path_prefix", str), ("latency", float)):
            if key in body:
                setattr(faults, key, cast(body[key]))
    except (TypeError, ValueError) as exc:
        return admin_error(400, str(exc))
    return json_response(asdict(faults))


async def clear_faults(request: web.Request) -> web.Response:
    faults = _state(request).faults
    faults.fail_next, faults.status, faults.path_prefix, faults.latency = 0, 500, "/mgmt", 0.0
    return json_response(asdict(faults))


async def settings(request: web.Request) -> web.Response:
    """Body: any of {"advance_clock": s, "token_timeout": s, "max_token_timeout": s, "partitions": [...]}."""
    state = _state(request)
    body = await admin_body(request)
    try:
        if "advance_clock" in body:
            state.clock.advance(float(body["advance_clock"]))
        if "token_timeout" in body:
            state.token_timeout = float(body["token_timeout"])
        if "max_token_timeout" in body:
            state.max_token_timeout = float(body["max_token_timeout"])
        state.partitions |= {str(p) for p in body.get("partitions", [])}
    except (TypeError, ValueError) as exc:
        return admin_error(400, str(exc))
    return json_response(
        {
            "clock_offset": state.clock.offset,
            "token_timeout": state.token_timeout,
            "max_token_timeout": state.max_token_timeout,
            "partitions": sorted(state.partitions),
        }
    )


async def get_requests(request: web.Request) -> web.Response:
    """How many `/mgmt` calls were served, per "METHOD /path", since start or the last DELETE."""
    counts = _state(request).requests
    return json_response({"requests": dict(counts), "total": sum(counts.values())})


async def clear_requests(request: web.Request) -> web.Response:
    _state(request).requests.clear()
    return json_response({"requests": {}, "total": 0})


def add_admin_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_emulator/state", get_state)
    r.add_put("/_emulator/pools/{pool}", put_pool)
    r.add_delete("/_emulator/pools/{pool}", delete_pool)
    r.add_post("/_emulator/pools/{pool}/members", add_member)
    r.add_patch("/_emulator/pools/{pool}/members/{member}", patch_member)
    r.add_delete("/_emulator/pools/{pool}/members/{member}", delete_member)
    r.add_post("/_emulator/tokens/revoke", revoke_tokens)
    r.add_post("/_emulator/users", set_user)
    r.add_post("/_emulator/faults", set_faults)
    r.add_delete("/_emulator/faults", clear_faults)
    r.add_post("/_emulator/settings", settings)
    r.add_get("/_emulator/requests", get_requests)
    r.add_delete("/_emulator/requests", clear_requests)
