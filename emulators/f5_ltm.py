"""`/mgmt/tm/ltm/pool...` and `/mgmt/tm/sys...` handlers of the BIG-IP emulator.

Supports the OData-style options real clients send: `$select` (items hold only the selected keys and the
collection selfLink echoes the encoded query), `$filter=partition eq X`, `$top`/`$skip` and
`expandSubcollections=true`. An empty collection omits `items`, as a real BIG-IP may.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote_plus

from aiohttp import web

from llmsched.emulators.f5_errors import bad_request, folder_not_found, json_response, member_not_found, pool_not_found
from llmsched.emulators.f5_members import LINK_HOST, Pool, pool_path
from llmsched.emulators.f5_state import F5State

STATE_KEY = web.AppKey("f5_state", F5State)
ODATA_KEYS = ("$select", "$filter", "$top", "$skip", "expandSubcollections")


def _state(request: web.Request) -> F5State:
    return request.app[STATE_KEY]


def _self_link(path: str, request: web.Request, version: str) -> str:
    # Echo the query with "$" literal and values form-encoded (name%2Caddress), then the version.
    parts = [f"{k}={quote_plus(request.query[k])}" for k in ODATA_KEYS if k in request.query]
    parts.append(f"ver={version}")
    return f"{LINK_HOST}{path}?{'&'.join(parts)}"


def _collection(kind: str, path: str, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
    """Apply $filter/$skip/$top/$select to `items` and wrap them in the collection shape."""
    state = _state(request)
    flt = request.query.get("$filter")
    if flt:
        words = flt.replace("+", " ").split()
        if len(words) != 3 or words[1] != "eq":
            return bad_request(f"Query parameter $filter has an unsupported value: {flt}")
        items = [i for i in items if str(i.get(words[0])) == words[2]]
    body: dict[str, Any] = {"kind": kind, "selfLink": _self_link(path, request, state.version)}
    total = len(items)
    try:
        skip = int(request.query.get("$skip", "0"))
        top = int(request.query["$top"]) if "$top" in request.query else None
    except ValueError:
        return bad_request("Query parameters $top and $skip must be integers.")
    items = items[skip:] if top is None else items[skip : skip + top]
    if top is not None and top > 0:
        # Paging envelope seen on real boxes; not pinned by the spec, so clients must not rely on it.
        body.update(
            currentItemCount=len(items),
            itemsPerPage=top,
            pageIndex=skip // top + 1,
            startIndex=skip + 1,
            totalItems=total,
            totalPages=max(1, math.ceil(total / top)),
        )
    select = request.query.get("$select")
    if select:
        keys = [k.strip() for k in select.split(",") if k.strip()]
        items = [{k: i[k] for k in keys if k in i} for i in items]
    if items:  # an empty collection has no `items` key at all
        body["items"] = items
    return json_response(body)


def _resolve_pool(state: F5State, ref: str) -> Pool | web.Response:
    """The pool for a URL reference, or the realistic error: 400 unknown folder, 404 unknown pool."""
    full = pool_path(ref)
    folder = full.rsplit("/", 1)[0]
    known_folders = {f"/{p}" for p in state.partitions} | {p.full_path.rsplit("/", 1)[0] for p in state.pools.values()}
    if folder not in known_folders:
        return folder_not_found(folder.lstrip("/"))
    pool = state.find_pool(full)
    if pool is None:
        return pool_not_found(full)
    return pool


async def list_pools(request: web.Request) -> web.Response:
    state = _state(request)
    expand = request.query.get("expandSubcollections", "").lower() == "true"
    items = [p.to_json(state.version, expand) for p in sorted(state.pools.values(), key=lambda p: p.full_path)]
    return _collection("tm:ltm:pool:poolcollectionstate", "/mgmt/tm/ltm/pool", request, items)


async def get_pool(request: web.Request) -> web.Response:
    state = _state(request)
    pool = _resolve_pool(state, request.match_info["pool"])
    if isinstance(pool, web.Response):
        return pool
    expand = request.query.get("expandSubcollections", "").lower() == "true"
    item = pool.to_json(state.version, expand)
    select = request.query.get("$select")
    if select:
        item = {k: item[k] for k in (s.strip() for s in select.split(",")) if k in item}
    return json_response(item)


async def list_members(request: web.Request) -> web.Response:
    state = _state(request)
    pool = _resolve_pool(state, request.match_info["pool"])
    if isinstance(pool, web.Response):
        return pool
    items = [m.to_json(pool.tilde_path, state.version) for m in pool.members]
    return _collection(
        "tm:ltm:pool:members:memberscollectionstate", f"/mgmt/tm/ltm/pool/{pool.tilde_path}/members", request, items
    )


async def member(request: web.Request) -> web.Response:
    """GET or PATCH one member; PATCH takes the f5-ansible writes (user-up/user-down, user-enabled/-disabled)."""
    state = _state(request)
    pool = _resolve_pool(state, request.match_info["pool"])
    if isinstance(pool, web.Response):
        return pool
    ref = request.match_info["member"]
    m = pool.find_member(ref)
    if m is None:
        return member_not_found(pool.full_path, ref if "~" in ref or "/" in ref else f"~{pool.partition}~{ref}")
    if request.method == "PATCH":
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            if "session" in body or "state" in body:
                m.apply_wire(body.get("session"), body.get("state"))
            for wire, attr in (
                ("ratio", "ratio"),
                ("priorityGroup", "priority_group"),
                ("connectionLimit", "connection_limit"),
            ):
                if wire in body:
                    setattr(m, attr, int(body[wire]))
            if "description" in body:
                m.description = str(body["description"])
        except ValueError as exc:
            return bad_request(f"invalid property value: {exc}")
    item = m.to_json(pool.tilde_path, state.version)
    select = request.query.get("$select")
    if select:
        item = {k: item[k] for k in (s.strip() for s in select.split(",")) if k in item}
    return json_response(item)


async def sys_root(request: web.Request) -> web.Response:
    # f5-ansible probes GET /mgmt/tm/sys to test Basic-auth credentials.
    ver = _state(request).version
    refs = ["version", "global-settings", "performance", "software"]
    return json_response(
        {
            "kind": "tm:sys:syscollectionstate",
            "selfLink": f"{LINK_HOST}/mgmt/tm/sys?ver={ver}",
            "items": [{"reference": {"link": f"{LINK_HOST}/mgmt/tm/sys/{r}?ver={ver}"}} for r in refs],
        }
    )


async def sys_version(request: web.Request) -> web.Response:
    ver = _state(request).version
    entries = {
        "Build": "0.0.4",
        "Date": "Thu Jun  2 12:00:00 PDT 2022",
        "Edition": "Final",
        "Product": "BIG-IP",
        "Title": "Main Package",
        "Version": ver,
    }
    return json_response(
        {
            "kind": "tm:sys:version:versionstats",
            "selfLink": f"{LINK_HOST}/mgmt/tm/sys/version?ver={ver}",
            "entries": {
                f"{LINK_HOST}/mgmt/tm/sys/version/0": {
                    "nestedStats": {"entries": {k: {"description": v} for k, v in entries.items()}}
                }
            },
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/mgmt/tm/sys", sys_root)
    app.router.add_get("/mgmt/tm/sys/version", sys_version)
    app.router.add_get("/mgmt/tm/ltm/pool", list_pools)
    app.router.add_get("/mgmt/tm/ltm/pool/{pool}", get_pool)
    app.router.add_get("/mgmt/tm/ltm/pool/{pool}/members", list_members)
    app.router.add_route("GET", "/mgmt/tm/ltm/pool/{pool}/members/{member}", member)
    app.router.add_route("PATCH", "/mgmt/tm/ltm/pool/{pool}/members/{member}", member)
