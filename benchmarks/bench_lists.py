"""lists: ingest of a real-shaped archive, and its busiest pages against a
bare Flask response.

1. **Ingest.** A generated archive of ``--messages`` messages (default
   10,000; see :func:`archive`) is delivered to one public list with two
   subscribers:

   - over LMTP to ``srht lists lmtp`` (a process of its own, as the mail
     server reaches it): each message parsed, threaded, recognised as a
     patch, stored and committed before its ``250``, and its two copies
     queued;
   - the **baseline**: the same raw messages inserted, one transaction
     each (as the listener commits each), into a table of the same
     PostgreSQL database; measured before and after the ingest, the
     median taken.

   Printed as messages per second and as the ingest's ratio to the baseline.

2. **Pages** under ``srht serve``'s gunicorn (2 sync workers), each against
   the bare Flask app of ``bare_server.py`` answering the same bytes, in
   alternating rounds (as ``bench_pages.py``): the thread page of a
   200-message thread, and the list page (its first page of threads).
   Target (issue 18, as the other pages): at least 0.33 of the bare rate.

    python benchmarks/bench_lists.py [--quick] [--messages N] [--python-load]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import sqlalchemy as sa
from bench_core import Server, child_env, fetch, load_python, load_wrk, running

from srht_core import create_app, db_session, state_of
from srht_core.config import dump_ini
from srht_core.migrate import upgrade
from srht_core.testing import free_port, site_config, throwaway_postgres

HERE = Path(__file__).parent
DOMAIN = "lists.example.org"
LIST = f"~alice/widget-devel@{DOMAIN}"
BIG_THREAD = 200

TEXT = (
    "the widget build fails when the driver frees its buffer twice under load so this "
    "change keeps a reference until the queue drains and adds a test for it we saw the "
    "same crash on arm64 last week release notes should mention the new option config "
    "parser memory leak timeout retry patch series review thanks looks good to me but "
    "please split the refactoring from the fix and rebase on main"
)
WORDS = re.findall(r"\S+", TEXT)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        text = " ".join(_sentence(rng) for _ in range(rng.randint(1, 4)))
        # Wrapped at 72 columns, as mail clients send it.
        line, lines = "", []
        for word in text.split():
            if len(line) + len(word) + 1 > 72:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        out.append("\n".join(lines))
    return out


def _diff(rng: random.Random, number: int) -> str:
    path = f"src/widget/part{number}.c"
    removed = [f"\tvalue = old_{i}(value);" for i in range(rng.randint(1, 8))]
    added = [f"\tvalue = new_{i}(value, flags);" for i in range(rng.randint(1, 12))]
    context = ["\tif (!value)", "\t\treturn -EINVAL;"]
    hunk = context + [f"-{line}" for line in removed] + [f"+{line}" for line in added]
    body = "\n".join(line if line[0] in "+-" else f" {line}" for line in hunk)
    return (
        f"diff --git a/{path} b/{path}\n"
        f"index 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -10,{len(context) + len(removed)} +10,{len(context) + len(added)} @@\n{body}\n"
    )


class _Message:
    def __init__(
        self, message_id: str, subject: str, body: str, when: datetime, parents: list[_Message]
    ):
        self.message_id, self.subject, self.body, self.when = message_id, subject, body, when
        self.parents = parents  # the chain of ancestors, oldest first

    def raw(self, rng: random.Random, people: list[str]) -> bytes:
        out = EmailMessage()
        out["From"] = rng.choice(people)
        out["To"] = LIST
        out["Subject"] = self.subject
        out["Date"] = format_datetime(self.when)
        out["Message-ID"] = f"<{self.message_id}@example.org>"
        if self.parents:
            out["In-Reply-To"] = f"<{self.parents[-1].message_id}@example.org>"
            out["References"] = " ".join(f"<{p.message_id}@example.org>" for p in self.parents)
        out.set_content(self.body)
        return out.as_bytes()


def _reply(rng: random.Random, parent: _Message, number: str, when: datetime) -> _Message:
    quoted = [f"> {line}" if line else ">" for line in parent.body.splitlines()]
    start = rng.randint(0, max(0, len(quoted) - 3))
    quote = "\n".join(quoted[start : start + rng.randint(2, 8)])
    body = (
        f"On {format_datetime(parent.when)}, someone wrote:\n{quote}\n\n"
        + "\n\n".join(_paragraphs(rng, rng.randint(1, 3)))
        + "\n"
    )
    subject = parent.subject if parent.subject.startswith("Re: ") else f"Re: {parent.subject}"
    return _Message(number, subject, body, when, [*parent.parents, parent])


def _thread(rng: random.Random, index: int, size: int, start: datetime) -> list[_Message]:
    """A thread of ``size`` messages: a discussion, or (one in four) a patch
    series with its cover letter, followed by the replies."""
    when = start
    out: list[_Message] = []
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))).capitalize()
    if size > 1 and rng.random() < 0.25:
        patches = min(size - 1, rng.randint(1, 5))
        version = "v2 " if rng.random() < 0.2 else ""
        cover = _Message(
            f"t{index}-0",
            f"[PATCH {version}0/{patches}] {title}",
            "\n\n".join(_paragraphs(rng, 2)) + "\n",
            when,
            [],
        )
        out.append(cover)
        for number in range(1, patches + 1):
            when += timedelta(seconds=rng.randint(1, 5))
            body = "\n\n".join(_paragraphs(rng, 1)) + "\n---\n" + _diff(rng, number)
            subject = f"[PATCH {version}{number}/{patches}] {title} part {number}"
            out.append(_Message(f"t{index}-{number}", subject, body, when, [cover]))
    else:
        body = "\n\n".join(_paragraphs(rng, rng.randint(1, 4))) + "\n"
        out.append(_Message(f"t{index}-0", title, body, when, []))
    while len(out) < size:
        when += timedelta(minutes=rng.randint(1, 600))
        # Answers go mostly to recent messages: threads grow deep, and branch.
        parent = out[-1 - min(len(out) - 1, int(rng.expovariate(0.5)))]
        out.append(_reply(rng, parent, f"t{index}-{len(out)}", when))
    return out


def archive(count: int, seed: int = 18) -> list[bytes]:
    """``count`` raw messages shaped like a project's development list: a
    thread of :data:`BIG_THREAD` messages, then threads of a heavy-tailed
    size (most of one to five messages, a few of dozens), a quarter of them
    patch series (a cover letter, one to five patches with diffs, some
    ``v2``), replies quoting a few lines of what they answer, 300 authors;
    delivered in date order, threads interleaved."""
    rng = random.Random(seed)
    people = [f"Person {n} <person{n}@example.org>" for n in range(300)]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    messages = _thread(rng, 0, min(BIG_THREAD, count), start)
    index = 1
    while len(messages) < count:
        size = min(count - len(messages), 1 + int(rng.paretovariate(1.3)) % 60)
        begins = start + timedelta(minutes=rng.randint(0, 60 * 24 * 365))
        messages += _thread(rng, index, size, begins)
        index += 1
    messages.sort(key=lambda m: m.when)
    return [m.raw(rng, people) for m in messages]


def baseline(engine: sa.Engine, raws: list[bytes]) -> float:
    """Messages per second writing ``raws`` into a table, a transaction each."""
    table = sa.table("bench_raw", sa.column("message_id"), sa.column("raw"))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS bench_raw"))
        connection.execute(
            sa.text("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, message_id text, raw bytea)")
        )
    began = time.perf_counter()
    for raw in raws:
        found = re.search(rb"^Message-ID: (.*)$", raw, re.M | re.I)
        with engine.begin() as connection:
            connection.execute(
                sa.insert(table).values(message_id=found[1].decode() if found else None, raw=raw)
            )
    return len(raws) / (time.perf_counter() - began)


def ingest(port: int, raws: list[bytes]) -> float:
    """Messages per second over LMTP, one connection, each answered 250."""
    began = time.perf_counter()
    with smtplib.LMTP("127.0.0.1", port, timeout=120) as client:
        for raw in raws:
            refused = client.sendmail("sender@example.org", [LIST], raw.replace(b"\n", b"\r\n"))
            assert not refused, refused
    return len(raws) / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages, shorter rounds")
    parser.add_argument("--messages", type=int, help="messages to ingest (default 10,000)")
    parser.add_argument(
        "--python-load", action="store_true", help="use the built-in load generator instead of wrk"
    )
    args = parser.parse_args()
    count = args.messages or (1_000 if args.quick else 10_000)
    rounds, seconds, connections = (2, 3, 4) if args.quick else (5, 8, 4)
    load = load_python if args.python_load or not shutil.which("wrk") else load_wrk

    raws = archive(count)
    print(f"archive: {len(raws)} messages, {sum(map(len, raws)) / 1e6:.1f} MB", flush=True)
    work = Path(tempfile.mkdtemp(prefix="srht-bench-lists-"))
    with throwaway_postgres() as postgres:
        ports = {"lists": free_port(), "lmtp": free_port()}
        data = site_config(
            work / "data",
            {
                "lists": {
                    "origin": f"http://127.0.0.1:{ports['lists']}",
                    "workers": 2,
                    "bind": f"127.0.0.1:{ports['lists']}",
                    "connection-string": postgres.create_database(),
                    "posting-domain": DOMAIN,
                }
            },
        )
        config = work / "config.ini"
        config.write_text(dump_ini(data), encoding="utf-8")
        app = create_app("lists", str(config))
        state = state_of(app)
        upgrade(state.db, "lists", state.schema)
        with app.app_context():
            from srht_plugins.lists import lists
            from srht_plugins.lists.models import Subscription, User

            alice = User(id=1, username="alice", email="alice@example.org")
            db_session.add(alice)
            made = lists.create_list(alice, "widget-devel", "Development of the widget", "public")
            db_session.flush()
            for address in ("carol@example.org", "dave@example.org"):
                db_session.add(Subscription(list_id=made.id, address=address))
            db_session.commit()

        env = child_env(work)
        base = [sys.executable, "-m", "srht_core.cli", "--config", str(config)]
        before = baseline(state.db.engine, raws)
        print(f"baseline: {before:.0f} messages/s", flush=True)
        log = open(work / "lmtp.log", "wb")  # noqa: SIM115 - closed below
        listener = subprocess.Popen(
            [*base, "lists", "lmtp", "--bind", f"127.0.0.1:{ports['lmtp']}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    smtplib.LMTP("127.0.0.1", ports["lmtp"], timeout=5).quit()
                    break
                except OSError:
                    assert time.monotonic() < deadline, (work / "lmtp.log").read_text()
                    time.sleep(0.2)
            taken = ingest(ports["lmtp"], raws)
        finally:
            listener.terminate()
            listener.wait(30)
            log.close()
        print(f"ingest over LMTP: {taken:.0f} messages/s", flush=True)
        after = baseline(state.db.engine, raws)
        print(f"baseline again: {after:.0f} messages/s", flush=True)

        with state.db.engine.connect() as connection:
            stored = connection.scalar(sa.text("SELECT count(*) FROM email"))
            big = connection.execute(
                sa.text("SELECT id, messages FROM thread ORDER BY messages DESC LIMIT 1")
            ).one()
            threads = connection.scalar(sa.text("SELECT count(*) FROM thread"))
            patchsets = connection.scalar(sa.text("SELECT count(*) FROM patchset"))
        state.db.dispose()
        print(f"stored {stored} messages, {threads} threads, {patchsets} patchsets", flush=True)
        assert stored == count, f"{stored} stored of {count}"
        assert big.messages == min(BIG_THREAD, count), big

        paths = {
            "thread": f"/~alice/widget-devel/threads/{big.id}",
            "list": "/~alice/widget-devel",
        }
        page = Server(
            "lists",
            ports["lists"],
            [*base, "serve", "lists", "--workers", "2"],
            env,
            work / "lists.log",
        )
        results: dict[str, list[float]] = {}
        for name, path in paths.items():
            with running([page]):
                page.wait_ready("/healthz")
                status, body = fetch(page.url + path)
                assert status == 200, body[:500]
            body_file = work / f"{name}.html"
            body_file.write_bytes(body)
            bare_port = free_port()
            bare = Server(
                f"bare-{name}",
                bare_port,
                [
                    sys.executable,
                    str(HERE / "bare_server.py"),
                    str(config),
                    "lists",
                    f"127.0.0.1:{bare_port}",
                    "2",
                    str(body_file),
                ],
                env,
                work / f"bare-{name}.log",
            )
            with running([page, bare]):
                page.wait_ready("/healthz")
                bare.wait_ready("/")
                for _ in range(rounds):
                    results.setdefault(name, []).append(load(page.url + path, seconds, connections))
                    results.setdefault(f"bare-{name}", []).append(
                        load(bare.url + "/", seconds, connections)
                    )
                    time.sleep(0.5)
            print(f"{name}: {path} is {len(body)} bytes", flush=True)

    base_rate = statistics.median([before, after])
    print(f"\n{'ingest':<34} {'msg/s':>8} {'baseline':>11} {'ratio':>6}")
    print(
        f"{f'{count:,} messages over LMTP':<34} {taken:>8.0f} {base_rate:>11.0f} "
        f"{taken / base_rate:>6.2f}"
    )
    print(f"\n{'page':<34} {'req/s':>8} {'bare req/s':>11} {'ratio':>6}")
    for name, label in (
        ("thread", f"thread page, {BIG_THREAD} messages"),
        ("list", "list page"),
    ):
        mine = statistics.median(results[name])
        bare_rate = statistics.median(results[f"bare-{name}"])
        print(f"{label:<34} {mine:>8.0f} {bare_rate:>11.0f} {mine / bare_rate:>6.2f}")
    print("\ntarget: each page at least 0.33 of the bare response's rate")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
