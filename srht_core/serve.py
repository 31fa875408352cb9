"""``srht serve``: one service under gunicorn.

The app is built once in the gunicorn master (so a bad config fails before
any worker forks) and shared by the workers. Metrics of all workers are
added up through a per-run ``PROMETHEUS_MULTIPROC_DIR``. Workers are
gunicorn's sync workers, killed after the service's ``timeout`` without a
heartbeat; a streaming request keeps its worker alive while it moves
(:func:`srht_core.progress.report_progress`).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from .config import Config
from .plugins import PluginHost
from .progress import set_heartbeat

__all__ = ["serve"]


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, loader: Any, options: dict[str, Any]):
        self._loader = loader
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:  # older gunicorns lack some settings
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self._loader()


def serve(
    service: str,
    config: Config,
    plugins: PluginHost,
    *,
    bind: str | None = None,
    workers: int | None = None,
) -> None:
    """Run ``service`` until gunicorn is stopped (SIGTERM or Ctrl-C)."""
    from .app import create_app

    section_bind = config.get(service, "bind")
    metrics_dir = tempfile.mkdtemp(prefix=f"srht-{service}-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    app = create_app(service, config, plugins=plugins)

    def child_exit(_server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

    def post_fork(_server: Any, worker: Any) -> None:
        app.extensions["srht.db"].engine.dispose(close=False)
        # A streaming request's progress counts as the worker's heartbeat,
        # so a transfer that keeps moving is not cut off at the timeout.
        set_heartbeat(worker.notify)

    options = {
        "bind": bind or section_bind,
        "workers": workers or config.get(service, "workers"),
        "preload_app": True,
        "proc_name": f"srht-{service}",
        "accesslog": None,
        "errorlog": "-",
        "timeout": config.get(service, "timeout") or 60,
        "graceful_timeout": 10,
        "forwarded_allow_ips": "127.0.0.1,::1",
        # gunicorn's control socket lives in $HOME, which services don't
        # have (and systemd hides); we manage processes through systemd.
        "control_socket_disable": True,
        "child_exit": child_exit,
        "post_fork": post_fork,
    }
    # Everything loaded so far lives as long as the process: kept out of the
    # collector, the workers do not copy it on write when a collection
    # touches it, and a stopping process does not walk it (seconds per
    # worker on a loaded machine).
    gc.freeze()
    master = os.getpid()
    try:
        _Gunicorn(lambda: app, options).run()
    finally:
        # gunicorn's workers unwind through here too when they exit (on a
        # reload, or when one is killed for a timeout): only the master may
        # remove the folder the other workers still write to.
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
