"""The per-run directory where the API's gunicorn workers keep their metric values (prometheus_client multiprocess).

Named `llmsched-prom-<pid>-…` after the process that becomes the gunicorn master (`llmsched api` execs gunicorn, so
the pid stays), it is removed by the master's exit hook. A master that never ran its hook (SIGKILL, a bind failure)
leaves its directory behind: the next run removes every such directory whose process is gone.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import MutableMapping

PREFIX = "llmsched-prom-"
OWNED_ENV = "LLMSCHED_PROM_DIR_OWNED"  # "1": the directory was made for this run and is removed at exit


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(base: str | None = None) -> None:
    for path in glob.glob(os.path.join(base or tempfile.gettempdir(), PREFIX + "*")):
        pid_text = os.path.basename(path)[len(PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def private_metrics_dir(env: MutableMapping[str, str]) -> None:
    """Unless `env` names one, create this run's directory and put it in `env` (marked as ours to remove)."""
    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    remove_stale()
    env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    env[OWNED_ENV] = "1"
