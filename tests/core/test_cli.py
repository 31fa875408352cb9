"""The ``srht`` command line: keys, development configs, showing a config,
listing services, a service's own commands, and ``srht up`` for real."""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from srht_core import DevDaemon, ServiceInfo, hookimpl
from srht_core.keys import webhook_public_key
from srht_core.testing import wait_for_http


def test_help_lists_the_commands(srht):
    result = srht("--help")
    assert result.exit_code == 0
    commands = re.findall(r"^  (\S+)\s", result.stdout.split("Commands:")[1], re.M)
    assert {"config", "dev", "keygen", "migrate", "serve", "services", "up", "worker"} <= set(
        commands
    )
    assert "srht config init --dev" in result.stdout


def test_help_and_the_facade_import_no_web_or_database_stack():
    """``import srht_core`` is lazy (PEP 562) and ``srht --help`` asks no
    service for its commands, so neither imports Flask, SQLAlchemy or Celery
    (a fresh interpreter: what a user's ``srht --help`` runs)."""
    probe = (
        "import sys\n"
        "import srht_core\n"
        "from srht_core.cli import main\n"
        "try:\n"
        "    main(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'sqlalchemy', 'celery', "
        "'jinja2', 'werkzeug'})\n"
        "print('HEAVY', heavy)\n"
        "print('LAZY', srht_core.Config.__name__, 'flask' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    assert "Commands:" in out and "git " in out
    # A name of the facade is there on first use, and costs only its module.
    assert "LAZY Config False" in out


def test_every_name_of_the_facade_resolves():
    import srht_core

    assert sorted(srht_core.__all__) == sorted(set(srht_core.__all__))
    for name in srht_core.__all__:
        assert getattr(srht_core, name) is not None, name
    assert callable(srht_core.confirm)
    # A submodule named like an export would replace it once imported
    # (``srht_core.confirm`` was the module after ``.confirm`` was imported).
    modules = {path.stem for path in Path(srht_core.__file__).parent.glob("*.py")}
    assert set(srht_core.__all__) & modules == set()
    assert set(srht_core.__all__) <= set(dir(srht_core))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        srht_core.nothing_here  # noqa: B018


def test_keygen_prints_keys_that_work(srht):
    result = srht("keygen")
    assert result.exit_code == 0
    text = result.stdout
    values = dict(re.findall(r"^([a-z-]+) = (\S+)$", text, re.M))
    assert set(values) == {"service-key", "network-key", "private-key"}
    assert len(values["service-key"]) >= 32
    fernet = Fernet(values["network-key"])
    assert fernet.decrypt(fernet.encrypt(b"sealed")) == b"sealed"
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(values["private-key"]))
    public = re.search(r"^# public key, for webhook receivers: (\S+)$", text, re.M).group(1)
    assert webhook_public_key(values["private-key"]) == public
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
        private.sign(b"payload"), b"payload"
    )
    assert srht("keygen").stdout != text
    assert text.startswith("[srht]\n") and "\n[webhooks]\n" in text


def test_config_init_writes_a_private_config_that_checks_clean(demo_service, srht, tmp_path):
    result = srht("config", "init", "--dev", "site/config.ini", "--services", "demo")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Wrote site/config.ini (mode 0600). Check it with `srht config check site/config.ini`.\n"
    )
    path = tmp_path / "site" / "config.ini"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "[demo]\norigin = http://127.0.0.1:5098\nbind = 127.0.0.1:5098\n" in text
    assert "environment = development" in text
    assert "\nmotd = Welcome\n" in text  # a required key, from its documented example
    check = srht("config", "check", "site/config.ini")
    assert check.exit_code == 0, check.output
    assert check.stdout.startswith("site/config.ini: OK")
    assert check.stdout.rstrip().endswith("services: demo)")
    assert check.stderr == ""


def test_config_init_refuses_to_overwrite_without_force(demo_service, srht, tmp_path):
    assert srht("config", "init", "--dev", "config.ini", "--services", "demo").exit_code == 0
    before = (tmp_path / "config.ini").read_text()
    refused = srht("config", "init", "--dev", "config.ini", "--services", "demo")
    assert refused.exit_code == 2
    assert refused.stderr == "error: config.ini exists; pass --force to replace it\n"
    assert (tmp_path / "config.ini").read_text() == before
    forced = srht("config", "init", "--dev", "config.ini", "--services", "demo", "--force")
    assert forced.exit_code == 0
    after = (tmp_path / "config.ini").read_text()
    assert after != before
    assert stat.S_IMODE((tmp_path / "config.ini").stat().st_mode) == 0o600


def test_config_init_names_an_unknown_service(demo_service, srht, tmp_path):
    result = srht("config", "init", "--dev", "config.ini", "--services", "demo,nosuch")
    assert result.exit_code == 2
    assert re.fullmatch(
        r"error: not installed: nosuch \(installed: [a-z, -]*\bdemo\b[a-z, -]*"
        r"\)\n",
        result.stderr,
    )
    assert not (tmp_path / "config.ini").exists()


def test_config_init_needs_dev(srht):
    result = srht("config", "init", "config.ini")
    assert result.exit_code == 2
    assert "Missing option '--dev'" in result.stderr


def test_config_show_redacts_secrets(demo_service, srht, tmp_path):
    srht("config", "init", "--dev", "config.ini", "--services", "demo")
    path = tmp_path / "config.ini"
    path.write_text(path.read_text() + "api-token = upstream-secret\n")
    secrets = dict(
        re.findall(r"^(service-key|network-key|private-key) = (\S+)$", path.read_text(), re.M)
    )
    assert len(secrets) == 3
    result = srht("config", "show")
    assert result.exit_code == 0, result.output
    shown = result.stdout
    for key in ("service-key", "network-key", "private-key", "api-token"):
        assert f"\n{key} = ********\n" in shown
    for value in [*secrets.values(), "upstream-secret"]:
        assert value not in shown
    assert "\nmotd = Welcome\n" in shown
    assert "\norigin = http://127.0.0.1:5098\n" in shown


def test_services_lists_installed_services_and_exits_1_for_a_broken_one(
    install_service, demo_service, srht, tmp_path
):
    result = srht("services")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"^demo\s+srht-demo 1\.2\s+disabled\s+no \[demo\] section in the config$",
        result.stdout,
        re.M,
    )
    install_service(
        "kaput", "import srht_missing_dependency\n", distribution="srht-kaput", version="0.1"
    )
    srht("config", "init", "--dev", "config.ini", "--services", "demo")
    result = srht("services")
    assert result.exit_code == 1
    assert re.search(r"^demo\s+srht-demo 1\.2\s+enabled\s+$", result.stdout, re.M)
    assert re.search(
        r"^kaput\s+srht-kaput 0\.1\s+failed\s+import failed: ModuleNotFoundError: "
        r"No module named 'srht_missing_dependency'$",
        result.stdout,
        re.M,
    )


def test_services_hooks_lists_the_hooks_each_service_implements(
    install_service, demo_service, srht
):
    install_service(
        "kaput", "import srht_missing_dependency\n", distribution="srht-kaput", version="0.1"
    )
    result = srht("services", "--hooks")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "PACKAGE", "STATUS", "HOOKS", "WHY"]
    assert re.search(
        r"^demo\s+srht-demo 1\.2\s+disabled\s+config_schema,nav_entries,service_info\s+"
        r"no \[demo\] section in the config$",
        result.stdout,
        re.M,
    )
    assert re.search(
        r"^kaput\s+srht-kaput 0\.1\s+failed\s+-\s+import failed: ", result.stdout, re.M
    )
    todo = next(line for line in lines if line.startswith("todo "))
    assert " blueprints,config_schema,database_schema,host_needs,jobs,nav_entries," in todo
    # The columns line up: each cell starts where its heading does.
    at = lines[0].index("HOOKS")
    assert all(line[at - 2 : at] == "  " and line[at] != " " for line in lines[1:])


def test_a_service_adds_its_own_commands(install_service, srht):
    install_service(
        "tasks",
        '''
        import click
        from srht_core import ServiceInfo, current_service, hookimpl

        @click.command()
        @click.argument("who")
        def greet(who):
            """Greet someone with the configured site name."""
            site = current_service().config["srht"]["site-name"]
            click.echo(f"{site} greets {who}")

        @hookimpl
        def service_info():
            return ServiceInfo("tasks", "Tasks", "Has commands.")

        @hookimpl
        def cli_commands():
            return [greet]
    ''',
        distribution="srht-tasks",
    )
    srht("config", "init", "--dev", "config.ini", "--services", "tasks")
    assert "tasks" in srht("--help").stdout
    help_text = srht("tasks", "--help").stdout
    assert "Commands of the Tasks service (tasks)." in help_text and "greet" in help_text
    result = srht("tasks", "greet", "Ada")
    assert result.exit_code == 0, result.output
    assert result.stdout == "srht (development) greets Ada\n"


# -- srht up -------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _read_lines(stream, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _as_a_background_job() -> None:
    """What a shell without job control does to a command it starts with
    ``&``: SIGINT is ignored, and Python then installs no handler for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_up_writes_a_config_migrates_serves_and_stops_everything(hello_venv, tmp_path, stop):
    """`srht up` in an empty folder, as a newcomer types it; SIGTERM stops it
    and every process it started, and so does Ctrl-C (SIGINT to the whole
    process group, as a terminal sends it), even when it was started with
    SIGINT ignored."""
    up = subprocess.Popen(
        [*hello_venv.srht, "up", "--services", "hello"],
        cwd=tmp_path,
        env=hello_venv.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_as_a_background_job if stop == "Ctrl-C" else None,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(up.stdout, lines), daemon=True)
    reader.start()
    output: list[str] = []
    descendants: set[int] = set()
    try:
        while not output or "Running. Press Ctrl-C to stop." not in output[-1]:
            line = lines.get(timeout=120)
            assert line is not None, "srht up exited early:\n" + "".join(output)
            output.append(line)
        text = "".join(output)
        assert "No config found: wrote a development config to config.ini." in text
        config = tmp_path / "config.ini"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert (tmp_path / "srht-data" / "hello.db").exists()
        url = re.search(r"^  hello\s+(http://127\.0\.0\.1:\d+)$", text, re.M).group(1)
        assert url == "http://127.0.0.1:5099"

        wait_for_http(url + "/healthz", timeout=60, process=up)
        page = requests.get(url + "/", timeout=30)
        assert page.status_code == 200
        assert '<h1 class="greeting">Hello</h1>' in page.text

        descendants = _children(up.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in descendants]
        assert any(b"serve" in c and b"hello" in c for c in commands)
        assert any(b"worker" in c and b"hello" in c for c in commands)
        assert len(descendants) >= 3  # the web server, its gunicorn worker, the job worker

        if stop == "SIGTERM":
            up.send_signal(signal.SIGTERM)
        else:
            os.killpg(up.pid, signal.SIGINT)
        assert up.wait(timeout=60) == 0
        # The children were stopped and reaped by srht up before it exited;
        # the gunicorn worker by its master. Give the kernel a moment to
        # tear down the last of them.
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in descendants if _alive(pid)] == []
    finally:
        # Everything it started is in its process group (its own session),
        # including what it may have started again after the snapshot above.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.pid, signal.SIGKILL)
        up.wait()
        for pid in descendants:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        reader.join(timeout=30)  # the pipe ends when the last process holding it has exited
        up.stdout.close()


class _Listening:
    """A plugin asking `srht up` for a development daemon."""

    @staticmethod
    @hookimpl
    def service_info():
        return ServiceInfo("listening", "Listening", "A service with a listener.")

    @staticmethod
    @hookimpl
    def dev_daemons(config):
        return [DevDaemon("smtp", ("listening", "smtp"), "127.0.0.1:2525", "send mail here")]


class _Broken:
    @staticmethod
    @hookimpl
    def service_info():
        return ServiceInfo("broken", "Broken", "A service whose hook raises.")

    @staticmethod
    @hookimpl
    def dev_daemons(config):
        raise RuntimeError("no listener today")


def test_up_starts_the_dev_daemons_services_declare(
    plugin_host, register_plugin, make_config, capsys
):
    from srht_core.cli import dev_daemons, up_processes

    assert register_plugin(_Listening, "listening").ok
    assert register_plugin(_Broken, "broken").ok
    config = make_config({"listening": {}, "broken": {}})
    daemons = dev_daemons(plugin_host, config, ["listening", "broken"])

    assert list(daemons) == ["listening"]  # the broken one is left out, with a warning
    assert "dev_daemons of service broken" in capsys.readouterr().err
    assert up_processes(["listening", "broken"], daemons) == [
        ("listening web", ["serve", "listening"]),
        ("listening worker", ["worker", "listening"]),
        ("listening smtp", ["listening", "smtp"]),
        ("broken web", ["serve", "broken"]),
        ("broken worker", ["worker", "broken"]),
    ]
