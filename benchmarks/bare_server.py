"""The baseline of the HTTP benchmark: a bare Flask app run by ``srht serve``'s
own gunicorn code, so it gets exactly the options the core gives a service.

    python benchmarks/bare_server.py CONFIG SERVICE BIND WORKERS BODY_FILE

It answers ``GET /`` with the bytes of BODY_FILE (static HTML) and nothing
else: no hooks, no templates, no database. CONFIG and SERVICE only feed
:func:`srht_core.serve.serve` the values it reads; the service's own app is
never built. Started and stopped by ``bench_core.py``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flask import Flask

import srht_core.app
from srht_core.config import load_config
from srht_core.plugins import PluginHost
from srht_core.serve import serve


def bare_app(body: str) -> Flask:
    app = Flask("bare")

    @app.get("/")
    def index() -> str:
        return body

    # serve()'s post_fork hook disposes the app's database engine; a bare app
    # has none, so it gets one that does nothing.
    app.extensions["srht.db"] = SimpleNamespace(
        engine=SimpleNamespace(dispose=lambda close=True: None)
    )
    return app


def main(argv: list[str]) -> None:
    config_path, service, bind, workers, body_file = argv
    app = bare_app(Path(body_file).read_text(encoding="utf-8"))

    def create_app(*_args: Any, **_kwargs: Any) -> Flask:
        return app

    # serve() imports create_app from srht_core.app when it is called.
    srht_core.app.create_app = create_app
    # As `srht` does before any command runs.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(config_path)
    serve(service, config, PluginHost(discover=False), bind=bind, workers=int(workers))


if __name__ == "__main__":
    main(sys.argv[1:])
