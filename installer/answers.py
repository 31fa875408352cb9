"""Getting the answers: from an answers file, from flags, or at the prompt.

An answers file is TOML (top-level keys) or INI (one ``[install]``
section); its keys are the questions' keys (``domain``, ``hosts``, ...),
lists may be TOML arrays or comma-separated strings, and every value goes
through the same check as at the prompt. Flags override the file. Every
problem is reported at once, each naming its source and key::

    answers.toml: key `domain`: not a domain name (like example.org): 'my site'

and nothing is written or deployed while one remains.
"""

from __future__ import annotations

import configparser
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .questions import QUESTIONS, Asking, Question, RefusedButUsable

__all__ = [
    "AnswerProblem",
    "AnswersError",
    "Given",
    "Prompter",
    "collect",
    "load_answers_file",
    "read_answers_file",
]

#: The one section of an INI answers file.
INI_SECTION = "install"


@dataclass(frozen=True)
class AnswerProblem:
    """One refused answer, and where it came from."""

    source: str
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: key `{self.key}`" if self.key else self.source
        return f"{where}: {self.message}"


class AnswersError(Exception):
    """Answers that cannot be used; carries every problem found."""

    def __init__(self, problems: list[AnswerProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Given:
    """An answer as written, and where: a file's name or ``--flag``."""

    raw: str
    source: str


def _as_text(value: Any) -> str:
    """TOML values as they would be typed: lists comma-separated, booleans yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_as_text(v) for v in value)
    return str(value)


def _unknown(key: str, source: str) -> AnswerProblem:
    known = [q.key for q in QUESTIONS]
    message = "unknown key"
    close = difflib.get_close_matches(key, known, n=1)
    message += f" (did you mean `{close[0]}`?)" if close else f"; the keys are: {', '.join(known)}"
    return AnswerProblem(source, key, message)


def read_answers_file(path: str | Path) -> dict[str, Given]:
    """The answers of a TOML or INI file, unparsed, by key.

    :raises AnswersError: when the file cannot be read or has unknown keys.
    """
    given, problems = load_answers_file(path)
    if problems:
        raise AnswersError(problems)
    return given


def load_answers_file(path: str | Path) -> tuple[dict[str, Given], list[AnswerProblem]]:
    """The answers of a TOML or INI file, unparsed, by key, and the problems
    of its keys (unknown, or a table): the known keys' answers are still
    checked, so every problem of the file is reported in one run.

    :raises AnswersError: when the file cannot be read or parsed at all.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AnswersError(
            [AnswerProblem(source, None, f"cannot be read: {error.strerror or error}")]
        ) from None
    values: dict[str, Any]
    if path.suffix.lower() == ".toml" or (
        path.suffix.lower() not in (".ini", ".cfg") and not text.lstrip().startswith("[")
    ):
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise AnswersError([AnswerProblem(source, None, f"not valid TOML: {error}")]) from None
        values = values.get(INI_SECTION, values) if set(values) == {INI_SECTION} else values
    else:
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        try:
            parser.read_string(text, source)
        except configparser.Error as error:
            raise AnswersError([AnswerProblem(source, None, f"not valid INI: {error}")]) from None
        if parser.sections() != [INI_SECTION]:
            raise AnswersError(
                [
                    AnswerProblem(
                        source,
                        None,
                        f"an INI answers file has one section, [{INI_SECTION}]; "
                        f"found {', '.join(f'[{s}]' for s in parser.sections()) or 'none'}",
                    )
                ]
            )
        values = dict(parser[INI_SECTION])
    problems = []
    given: dict[str, Given] = {}
    known = {q.key: q for q in QUESTIONS}
    for key, value in values.items():
        if key not in known:
            problems.append(_unknown(key, source))
        elif isinstance(value, dict):
            problems.append(AnswerProblem(source, key, "a value, not a table"))
        else:
            text = _as_text(value)
            if known[key].path and text.strip() not in ("", "-"):
                text = str(path.parent / Path(text.strip()).expanduser())
            given[key] = Given(text, source)
    return given, problems


class Prompter(Protocol):
    """Asks one question at a terminal (see :mod:`.prompts`)."""

    def ask(self, question: Question, default: str | None, asking: Asking) -> str:
        """The answer as typed (a checkbox's choices joined by commas)."""

    def refused(self, question: Question, reason: str) -> None:
        """Say why an answer was refused, before it is asked again."""

    def help(self, question: Question) -> None:
        """Show the question's help line."""


def collect(
    given: Mapping[str, Given], asking: Asking, *, prompter: Prompter | None = None
) -> dict[str, Any]:
    """Every answer, parsed, in table order.

    Without ``prompter`` (no terminal, or ``--answers``), a question without
    a given answer takes its default, or is a problem when it is
    ``required``; every problem is gathered and raised at once. With
    ``prompter``, a question without a given answer (or with a refused one)
    is asked until its answer is accepted.

    :raises AnswersError: listing every problem (without a prompter).
    """
    problems: list[AnswerProblem] = []
    failed: set[str] = set()
    for question in QUESTIONS:
        if not question.when(asking):
            asking.answers.pop(question.key, None)
            continue
        if any(need in failed for need in question.needs):
            failed.add(question.key)
            continue
        answer = given.get(question.key)
        if answer is not None:
            try:
                asking.answers[question.key] = question.parse(answer.raw, asking)
                continue
            except ValueError as error:
                if prompter is None or not question.interactive:
                    problems.append(AnswerProblem(answer.source, question.key, str(error)))
                    if isinstance(error, RefusedButUsable):
                        # The answers after it are still checked against it.
                        asking.answers[question.key] = error.value
                    else:
                        failed.add(question.key)
                    continue
                prompter.refused(question, f"{answer.source}: {error}")
        default = question.default(asking)
        if prompter is not None and question.interactive:
            asking.answers[question.key] = _ask(prompter, question, default, asking)
            continue
        if question.required:
            how = f"`{question.flag}` or " if question.flag else ""
            problems.append(
                AnswerProblem(
                    _source(given),
                    question.key,
                    f"required: {question.help.rstrip('.')}; give it with {how}the answers "
                    f"file's `{question.key}` key",
                )
            )
            failed.add(question.key)
            continue
        try:
            asking.answers[question.key] = (
                question.parse(default, asking) if default is not None else None
            )
        except ValueError as error:
            problems.append(
                AnswerProblem(
                    _source(given), question.key, f"{error} (the default; give an answer)"
                )
            )
            failed.add(question.key)
    if problems:
        raise AnswersError(problems)
    return dict(asking.answers)


def _source(given: Mapping[str, Given]) -> str:
    files = sorted({g.source for g in given.values() if not g.source.startswith("--")})
    return files[0] if files else "answers"


def _ask(prompter: Prompter, question: Question, default: str | None, asking: Asking) -> Any:
    prompter.help(question)
    while True:
        raw = prompter.ask(question, default, asking)
        try:
            return question.parse(raw, asking)
        except ValueError as error:
            prompter.refused(question, str(error))
            if question.kind == "text":
                default = raw  # edit what was typed rather than start over


def shown(question: Question, value: Any) -> str:
    """How an answer reads back in the summary (a secret never does)."""
    if question.secret:
        return "(hidden)" if value else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_shown_item(v) for v in value)
    return str(value)


def _shown_item(value: Any) -> str:
    if hasattr(value, "address") and hasattr(value, "name"):
        port = "" if value.port == 22 else f":{value.port}"
        return f"{value.name}={value.user}@{value.address}{port}"
    return str(value)
