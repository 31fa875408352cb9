"""The installer's questions, answers files and config edits, without hosts:
the table drives the flags and the keys, files of either format read the
same, every problem is reported at once naming its key, the config written
checks clean and is private, and add/remove leave every other line as it
was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from srht_installer.answers import AnswersError, collect, read_answers_file
from srht_installer.questions import QUESTIONS, Asking
from srht_installer.siteconfig import add_service, config_text, remove_service, write_checked

from srht_core import PluginHost
from srht_core.config import load_config
from srht_core.schema import SshTarget

pytestmark = pytest.mark.installer


def test_every_question_is_a_flag_and_a_key() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "srht_installer.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for question in QUESTIONS:
        if question.secret:
            assert question.flag is None and f"--{question.key} " not in shown
        else:
            assert f"{question.flag} VALUE" in shown, question.key
    assert len({q.key for q in QUESTIONS}) == len(QUESTIONS)


def test_toml_and_ini_answers_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        'domain = "example.org"\nservices = ["meta", "todo"]\n'
        'smtp-test = false\nadmin-password-file = "pw"\n'
    )
    (tmp_path / "a.ini").write_text(
        "[install]\ndomain = example.org\nservices = meta, todo\n"
        "smtp-test = no\nadmin-password-file = pw\n"
    )
    toml, ini = read_answers_file(tmp_path / "a.toml"), read_answers_file(tmp_path / "a.ini")
    assert {k: v.raw for k, v in toml.items()} == {k: v.raw for k, v in ini.items()}
    # Paths are relative to the answers file.
    assert toml["admin-password-file"].raw == str(tmp_path / "pw")


def test_an_unknown_key_is_named_with_the_likely_one(tmp_path: Path) -> None:
    (tmp_path / "answers.toml").write_text('domian = "example.org"\n')
    with pytest.raises(AnswersError) as raised:
        read_answers_file(tmp_path / "answers.toml")
    assert str(raised.value) == (
        f"{tmp_path / 'answers.toml'}: key `domian`: unknown key (did you mean `domain`?)"
    )


def test_every_problem_is_reported_at_once_naming_its_key(tmp_path: Path) -> None:
    (tmp_path / "answers.toml").write_text(
        'domain = "http://example.org"\nowner-email = "nobody"\n'
        'services = ["meta", "wiki"]\nhosts = "not a host=entry"\n'
    )
    given = read_answers_file(tmp_path / "answers.toml")
    with pytest.raises(AnswersError) as raised:
        collect(given, Asking(PluginHost()))
    problems = {p.key: p.message for p in raised.value.problems}
    assert set(problems) == {
        "domain",
        "owner-email",
        "services",
        "hosts",
        "admin-username",
        "admin-email",
    }
    assert problems["domain"].startswith("a domain name only, without a scheme")
    assert problems["services"].startswith("unknown service 'wiki'; installed: ")
    assert problems["admin-email"].startswith("required: ")
    # Answers that depend on the refused hosts are not asked about.
    assert "placement" not in problems and "redis-host" not in problems


def _answers() -> dict[str, object]:
    return {
        "domain": "example.org",
        "site-name": "Example",
        "owner-email": "me@example.org",
        "services": ["meta", "paste"],
        "hosts": [
            SshTarget("web", "root", "192.0.2.10", 22),
            SshTarget("db", "admin", "192.0.2.11", 2222),
        ],
        "placement": {"meta": "web", "paste": "web"},
        "postgresql-host": "db",
        "redis-host": "db",
        "tls": "self-signed",
        "registration": "open",
        "admin-username": "jane",
        "admin-email": "jane@example.org",
    }


def test_the_config_written_checks_clean_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    write_checked(path, config_text(_answers()))
    assert path.stat().st_mode & 0o777 == 0o600
    config = load_config(path)
    assert config.raw_value("deploy", "hosts") == "web=root@192.0.2.10, db=admin@192.0.2.11:2222"
    assert config.raw_value("meta::settings", "registration") == "yes"
    assert (
        config.raw_value("srht", "internal-networks")
        == "127.0.0.0/8, ::1/128, 192.0.2.10/32, 192.0.2.11/32"
    )
    # Fresh secrets each time.
    assert config_text(_answers()) != config_text(_answers())


def test_the_lists_mail_domain_goes_to_the_config_and_its_mx_record_is_printed(
    tmp_path: Path,
) -> None:
    from srht_installer.finish import dns_records
    from srht_installer.questions import question
    from srht_installer.siteconfig import load_site

    lists_domain = question("lists-domain")
    assert not lists_domain.when(Asking(PluginHost(), {"services": ["meta", "paste"]}))
    asked = Asking(PluginHost(), {"domain": "example.org", "services": ["meta", "lists"]})
    assert lists_domain.when(asked) and lists_domain.default(asked) == "lists.example.org"
    answers = {
        **_answers(),
        "services": ["meta", "lists"],
        "placement": {"meta": "web", "lists": "db"},
        "lists-domain": "lists.example.net",
    }
    path = tmp_path / "config.ini"
    write_checked(path, config_text(answers))
    assert load_config(path).raw_value("lists", "posting-domain") == "lists.example.net"
    records = [str(record) for record in dns_records(load_site(path))]
    # An MX names a host, never an address: the lists host gets a name.
    assert "lists.example.net.  IN MX    10 db.mail.example.org." in records
    assert "db.mail.example.org.  IN A     192.0.2.11" in records


def test_a_config_problem_is_reported_as_the_answer_that_caused_it(tmp_path: Path) -> None:
    answers = {**_answers(), "placement": {"meta": "web", "paste": "nowhere"}}
    with pytest.raises(AnswersError) as raised:
        write_checked(tmp_path / "config.ini", config_text(answers), source="site.toml")
    assert any(
        str(p).startswith("site.toml: key `placement`: no host 'nowhere'")
        for p in raised.value.problems
    ), raised.value
    assert not (tmp_path / "config.ini").exists()


def test_add_and_remove_leave_every_other_line_as_it_was() -> None:
    text = (
        "# my site\n[srht]\nglobal-domain = example.org ; hand-written\n\n"
        "[todo]\norigin = https://todo.example.org\n\n"
        "[todo::settings]\nx = 1\n\n# the paste service\n[paste]\nhosts = web\n"
    )
    added = add_service(text, "git", ["web"], "example.org")
    assert added.startswith(text)
    assert added.endswith("\n[git]\norigin = https://git.example.org\nhosts = web\n")
    assert remove_service(added, "git") == text
    assert remove_service(text, "todo") == (
        "# my site\n[srht]\nglobal-domain = example.org "
        "; hand-written\n\n# the paste service\n[paste]\n"
        "hosts = web\n"
    )


def _srht_install(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SRHT_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "srht_installer.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
    )


def test_an_unknown_key_is_reported_with_every_other_problem(tmp_path: Path) -> None:
    """One run names them all: an unknown key, a bad domain, hosts that do
    not answer (their names still place the services) and a placement on
    a host that does not exist."""
    (tmp_path / "answers.toml").write_text(
        'colour = "blue"\n'
        'domain = "my site"\n'
        'owner-email = "me@example.org"\n'
        'services = ["meta", "paste"]\n'
        'hosts = ["web=root@web.invalid", "db=root@db.invalid"]\n'
        'placement = "meta=web, paste=nowhere"\n'
        'admin-username = "jane"\n'
        'admin-email = "jane@example.org"\n'
    )

    result = _srht_install("--answers", "answers.toml", "--yes", cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("answers.toml")]
    assert [line.split(":")[1].strip() for line in problems] == [
        "key `colour`",
        "key `domain`",
        "key `hosts`",
        "key `placement`",
    ]
    assert "unknown key" in problems[0]
    assert "not a domain name" in problems[1]
    assert "host web: nothing answers on web.invalid:22" in problems[2]
    assert "host db: nothing answers on db.invalid:22" in problems[2]
    assert "no host 'nowhere' (hosts: web, db)" in problems[3]
    assert "4 problems in the answers; no host was touched." in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.toml"]


def test_a_change_that_is_not_applied_leaves_the_config_as_it_was(tmp_path: Path) -> None:
    """add and remove write the config only once they start changing hosts:
    refused for a host that does not answer (or, with hosts, for want of
    --yes without a terminal), the config stays byte for byte, and nothing
    is left beside it."""
    answers = {
        **_answers(),
        "hosts": [
            SshTarget("web", "root", "web.invalid", 22),
            SshTarget("db", "root", "db.invalid", 22),
        ],
    }
    path = tmp_path / "config.ini"
    write_checked(path, config_text(answers))
    before = path.read_bytes()

    for args in (("remove", "paste", "--yes"), ("add", "todo", "--yes"), ("remove", "paste")):
        result = _srht_install("--config", str(path), *args, cwd=tmp_path)
        assert path.read_bytes() == before, args
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.ini"]
        assert result.returncode == 1, result.stdout + result.stderr
        assert "host web (root@web.invalid:22): nothing answers" in result.stderr
        assert f"{path} is as it was." in result.stderr
