"""Boot test hosts by hand, for working on deploys::

    cd tests && python -m testhosts up alpha beta --map meta.srht.test=alpha
    ... ssh -i /tmp/srht-e2e-manual/id_ed25519 root@10.200.73.10 ...
    python -m testhosts down

``up`` leaves the hosts running and prints how to reach them; ``down``
stops what ``up`` started (by recorded PIDs) and removes its network.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .machine import TestHosts, clean_leftovers
from .slot import LEFTOVERS, SUFFIX

RUN_DIR = Path(f"/tmp/srht-e2e{SUFFIX}-manual")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testhosts")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="boot hosts and leave them running")
    up.add_argument("names", nargs="+")
    up.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="DOMAIN=HOST",
        help="an /etc/hosts entry on every host",
    )
    sub.add_parser("down", help="stop what `up` started")
    args = parser.parse_args()
    if args.command == "up":
        etc_hosts = dict(item.split("=", 1) for item in args.map)
        hosts = TestHosts(args.names, RUN_DIR, etc_hosts=etc_hosts)
        hosts.__enter__()
        (RUN_DIR / "names.json").write_text(json.dumps(args.names))
        for host in hosts.values():
            print(f"{host.name} {host.address} pid {host.pid}")
        print(f"key: {hosts.key}")
    else:
        names = (
            json.loads((RUN_DIR / "names.json").read_text())
            if (RUN_DIR / "names.json").exists()
            else []
        )
        if not LEFTOVERS.exists() and not names:
            print("nothing to stop")
        clean_leftovers(names)


if __name__ == "__main__":
    main()
