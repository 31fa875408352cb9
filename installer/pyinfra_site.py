"""The deploy file the installer gives pyinfra: ``srht_deploy``'s own
``site.py`` (or the deploy file named by ``$SRHT_INSTALLER_DEPLOY_FILE``,
such as the restore's first stage), run as is, plus a pyinfra state
callback that reports each
operation's start and end, per host, as JSON lines on the file descriptor
named by ``$SRHT_INSTALLER_EVENTS_FD``. The installer draws its progress
display from them; pyinfra's own log goes to the installer's log file.

Not imported by the package: pyinfra executes it once per host, as it does
any deploy file.
"""

from __future__ import annotations

import json
import os
import runpy
from typing import Any

from pyinfra import state
from pyinfra.api.state import BaseStateCallback
from srht_deploy.cli import HERE

EVENTS_FD = "SRHT_INSTALLER_EVENTS_FD"
#: The last lines of a failed operation's output, sent with its event.
OUTPUT_TAIL = 20


def _emit(event: dict[str, Any]) -> None:
    stream = getattr(_emit, "stream", None)
    if stream is None:
        raw = os.environ.get(EVENTS_FD)
        if not raw:
            return
        stream = os.fdopen(int(raw), "w", buffering=1, encoding="utf-8")
        _emit.stream = stream  # type: ignore[attr-defined]
    stream.write(json.dumps(event) + "\n")


def _name(state: Any, op_hash: str) -> str:
    """The operation's name. The deploy places each loop item's steps by the
    item (``srht_deploy.operations.each``), so a step has one name on all
    its hosts; a step that had several (a loop written without it) would
    read ``stage | a, b``."""
    names = sorted(state.get_op_meta(op_hash).names) or ["operation"]
    stages = {name.partition(" | ")[0] for name in names}
    if len(names) > 1 and len(stages) == 1 and all(" | " in name for name in names):
        return f"{stages.pop()} | " + ", ".join(name.partition(" | ")[2] for name in names)
    return ", ".join(names)


class Events(BaseStateCallback):
    """Reports operations to the installer (see the module's docstring)."""

    started = False

    @classmethod
    def operation_start(cls, state: Any, op_hash: str) -> None:  # type: ignore[override]
        if not cls.started:
            cls.started = True
            _emit(
                {
                    "event": "begin",
                    "hosts": {h.name: len(state.ops[h]) for h in state.inventory if h in state.ops},
                    "failed": sorted(h.name for h in state.failed_hosts),
                }
            )
        hosts = [h.name for h in state.inventory if op_hash in state.ops.get(h, {})]
        _emit({"event": "start", "op": _name(state, op_hash), "hosts": hosts})

    @staticmethod
    def operation_end(state: Any, op_hash: str) -> None:  # type: ignore[override]
        results: dict[str, dict[str, Any]] = {}
        for host in state.inventory:
            if op_hash not in state.ops.get(host, {}):
                continue
            meta = state.ops[host][op_hash].operation_meta
            if not meta.is_complete():
                results[host.name] = {"status": "skipped"}
            elif meta.did_error():
                lines = meta.stderr_lines or meta.stdout_lines
                results[host.name] = {"status": "error", "output": "\n".join(lines[-OUTPUT_TAIL:])}
            else:
                results[host.name] = {"status": "changed" if meta.did_change() else "ok"}
        _emit({"event": "end", "op": _name(state, op_hash), "results": results})


if not getattr(state, "srht_installer_events", False):
    state.add_callback_handler(Events())
    state.srht_installer_events = True

runpy.run_path(os.environ.get("SRHT_INSTALLER_DEPLOY_FILE") or str(HERE / "site.py"))
