"""SIGTERM makes every process finish within 5 s, measured for each command on its own and for
`llmsched up` as a whole: the API completes the select requests in flight, the scorer leaves no job half-run
(finished or still queued), and the poller deletes its BIG-IP token (the emulator shows it gone). A poller and a
scraper stuck on a hanging BIG-IP and engine still stop within 5 s.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from rq.registry import FailedJobRegistry, StartedJobRegistry

from llmsched.shared.scoring_queue import SERIALIZER, enqueue_scoring

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import PARTITION, POOL, BigIP, Engine
from tests.faults.harness import Process, http, wait_for
from tests.faults.redis_ctl import RedisServer
from tests.faults.stack import F5_PASSWORD_ENV, stop_up, write_config
from tests.helpers import alive, descendants, make_store

pytestmark = pytest.mark.faults

STOP_LIMIT_S = 5.0
POOL_KEY = f"{POOL}:{PARTITION}"


def parts(lab: Lab, **config) -> tuple[list[Engine], BigIP, RedisServer, Path, str]:
    engines = lab.engines(2)
    bigip = lab.bigip({POOL: [e.member for e in engines]})
    redis_server = lab.redis()
    path, api_port = write_config(lab.tmp_path, bigip, redis_server, {POOL: {}}, **config)
    return engines, bigip, redis_server, path, f"http://127.0.0.1:{api_port}"


def start(lab: Lab, command: str, path: Path, bigip: BigIP, *extra: str) -> Process:
    return lab.process([command, "--config", str(path), *extra], f"{command}.log", **{F5_PASSWORD_ENV: bigip.password})


def scored(redis_server: RedisServer) -> bool:
    snapshot = make_store(redis_server.url).scores(POOL_KEY) or {}
    return bool(snapshot.get("members")) and all(m["score"] is not None for m in snapshot["members"])


def test_sigterm_stops_poller_scraper_and_scorer_within_5_s_deleting_the_token_and_leaving_no_job_half_run(
    lab: Lab, record_figure: RecordFigure
) -> None:
    engines, bigip, redis_server, path, _ = parts(lab)
    procs = {name: start(lab, name, path, bigip) for name in ("poller", "scraper", "scorer")}
    wait_for("a scored pool", lambda: scored(redis_server), 30, every=0.1)
    assert bigip.active_tokens() == 1

    store = make_store(redis_server.url)
    for i in range(300):  # a queue of quick jobs, so one is running when the signal comes
        enqueue_scoring(store, f"filler-{i}:{PARTITION}", "signal test")
    time.sleep(0.2)
    results = {name: proc.terminate(STOP_LIMIT_S + 5) for name, proc in procs.items()}
    queue = store.keys.scoring_queue
    started = StartedJobRegistry(queue, connection=store.client, serializer=SERIALIZER).count
    failed = FailedJobRegistry(queue, connection=store.client, serializer=SERIALIZER).count

    for name, (code, took) in results.items():
        record_figure(
            f"SIGTERM to `llmsched {name}`",
            "exits 0 within 5 s"
            + {
                "poller": "; BIG-IP token deleted",
                "scorer": "; no job left started (finished or still queued)",
                "scraper": "",
            }[name],
            took,
            "s",
            figure=f"exit code {code}",
        )
    for name, (code, took) in results.items():
        assert code == 0 and took < STOP_LIMIT_S, (name, code, took, procs[name].output()[-2000:])
    assert bigip.active_tokens() == 0, "the poller must delete its BIG-IP token when it stops"
    assert started == 0 and failed == 0, (started, failed)


def test_sigterm_stops_a_poller_and_scraper_stuck_on_a_hanging_bigip_and_engine_within_5_s(
    lab: Lab, record_figure: RecordFigure
) -> None:
    engines, bigip, redis_server, path, _ = parts(lab, extra={"f5": {"timeout": 30}})
    doc = path.read_text().replace("timeout: 0.25", "timeout: 30")  # scrapes may wait 30 s too
    path.write_text(doc)
    poller, scraper = start(lab, "poller", path, bigip), start(lab, "scraper", path, bigip)
    wait_for("metrics in Redis", lambda: make_store(redis_server.url).metrics(POOL_KEY), 30, every=0.1)
    bigip.admin("POST", "/faults", {"latency": 60})
    for engine in engines:
        engine.mode("hang")
    time.sleep(1.5)  # both are now inside a call that would last far beyond 5 s
    for name, proc in (("poller", poller), ("scraper", scraper)):
        code, took = proc.terminate(STOP_LIMIT_S + 5)
        record_figure(
            f"SIGTERM to `llmsched {name}` stuck on a hanging peer",
            "exits within 5 s anyway",
            took,
            "s",
            figure=f"exit code {code}",
        )
        assert code == 0 and took < STOP_LIMIT_S, (name, code, took, proc.output()[-2000:])


def _slow_select(api: str, body: bytes, sent_half: threading.Event, go_on: threading.Event) -> bytes:
    """A select whose body arrives in two halves: it is in flight in the API while the signal arrives."""
    host, port = api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /scheduler/select HTTP/1.0\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2]
        )
        sent_half.set()
        go_on.wait(10)
        sock.sendall(body[len(body) // 2 :])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_sigterm_to_the_api_completes_in_flight_selects_and_stops_within_5_s(
    lab: Lab, record_figure: RecordFigure
) -> None:
    engines, bigip, redis_server, path, api = parts(lab)
    for name in ("poller", "scraper", "scorer"):
        start(lab, name, path, bigip)
    wait_for("a scored pool", lambda: scored(redis_server), 30, every=0.1)
    server = start(lab, "api", path, bigip, "--workers", "2")
    members = [e.member for e in engines]
    body = f'{{"pool_name": "{POOL}", "partition": "{PARTITION}", "members": ["{members[0]}", "{members[1]}"]}}'
    wait_for(
        "the API to answer",
        lambda: (
            http(
                "POST", f"{api}/scheduler/select", raw=body.encode(), headers={"Content-Type": "application/json"}
            ).text
            in members
        ),
        20,
    )

    outcomes: Counter[str] = Counter()
    stop_load = threading.Event()

    def load() -> None:
        while not stop_load.is_set():
            try:
                reply = http(
                    "POST",
                    f"{api}/scheduler/select",
                    raw=body.encode(),
                    timeout=5,
                    headers={"Content-Type": "application/json"},
                )
                outcomes[
                    "complete 200"
                    if reply.status == 200 and reply.text in members
                    else f"bad {reply.status} {reply.text[:40]!r}"
                ] += 1
            except ConnectionRefusedError:
                outcomes["refused (listener closed)"] += 1
                time.sleep(0.01)
            except ConnectionResetError:  # accepted by the kernel, never by a worker: dropped with the listener
                outcomes["reset before any answer"] += 1
            except OSError as exc:
                outcomes[f"error {type(exc).__name__}"] += 1

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    sent_half, go_on = threading.Event(), threading.Event()
    slow: dict[str, bytes] = {}
    slow_thread = threading.Thread(
        target=lambda: slow.setdefault("reply", _slow_select(api, body.encode(), sent_half, go_on)), daemon=True
    )
    slow_thread.start()
    assert sent_half.wait(5)
    time.sleep(0.3)
    tree = descendants(server.pid)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    go_on.set()  # the rest of the in-flight request arrives after the signal
    code = server.proc.wait(STOP_LIMIT_S + 5)
    took = time.monotonic() - signalled
    stop_load.set()
    for thread in (*threads, slow_thread):
        thread.join(10)

    reply = slow.get("reply", b"")
    record_figure(
        "SIGTERM to `llmsched api` (gunicorn) under load",
        "in-flight selects completed; exits within 5 s",
        took,
        "s",
        figure="; ".join(f"{k}: {n}" for k, n in sorted(outcomes.items())),
    )
    assert reply.startswith(b"HTTP/1.1 200") or reply.startswith(b"HTTP/1.0 200"), reply[:200]
    assert reply.split(b"\r\n\r\n", 1)[1].decode() in members
    assert code == 0 and took < STOP_LIMIT_S
    assert not [k for k in outcomes if k.startswith(("bad", "error"))], outcomes
    assert outcomes["complete 200"] > 0
    assert [p for p in tree if alive(p)] == []


def test_sigterm_stops_up_and_every_process_within_5_s_and_the_bigip_token_is_deleted(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = lab.stack()
    tree = descendants(stack.up.pid)
    assert stack.bigip.active_tokens() == 1
    code, took = stop_up(stack)
    record_figure(
        "SIGTERM to `llmsched up`",
        "every child stopped within 5 s; BIG-IP token deleted",
        took,
        "s",
        figure=f"{len(tree)} processes, exit code {code}",
    )
    assert code == 0 and took < STOP_LIMIT_S, stack.output()[-3000:]
    assert [p for p in tree if alive(p)] == []
    assert stack.bigip.active_tokens() == 0
    assert "did not stop" not in stack.output()
