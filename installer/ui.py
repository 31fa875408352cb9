"""What the installer shows and asks: questionary for the prompts, rich for
tables and progress.

At a terminal the progress of a run is a live display, one bar per host
with the operation it is on; without one (an answers file in CI, a log)
it is one line per operation that changed or failed something, so the
record reads as a plan carried out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import questionary
from questionary import Choice
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .answers import shown
from .questions import QUESTIONS, Asking, Question
from .run import Failure, Plan

__all__ = [
    "ApplyDisplay",
    "Prompter",
    "console",
    "plan_table",
    "report_failures",
    "summary_table",
]

console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False)

_STYLE = questionary.Style(
    [("qmark", "fg:#5f87af bold"), ("question", "bold"), ("answer", "fg:#5f87af bold")]
)


class Prompter:
    """Asks questions at the terminal (see :class:`~srht_installer.answers.Prompter`)."""

    def help(self, question: Question) -> None:
        console.print(f"\n[dim]{question.help}[/dim]")

    def refused(self, question: Question, reason: str) -> None:
        console.print(f"[red]✗ {reason}[/red]")

    def note(self, message: str) -> None:
        console.print(f"[dim]  {message}[/dim]")

    def ask(self, question: Question, default: str | None, asking: Asking) -> str:
        kind = question.kind
        if kind == "checkbox" and question.choices is not None:
            chosen = {part.strip() for part in (default or "").split(",") if part.strip()}
            choices = [
                Choice(f"{name:<8} {label}", value=name, checked=name in chosen)
                for name, label in question.choices(asking).items()
            ]
            answer = questionary.checkbox(question.prompt, choices=choices, style=_STYLE).ask()
            return ", ".join(_required(answer))
        if kind == "select" and question.choices is not None:
            options = question.choices(asking)
            choices = [Choice(label, value=value) for value, label in options.items()]
            answer = questionary.select(
                question.prompt,
                choices=choices,
                style=_STYLE,
                default=default if default in options else None,
            ).ask()
            return str(_required(answer))
        if kind == "confirm":
            answer = questionary.confirm(
                question.prompt, style=_STYLE, default=(default or "yes") == "yes"
            ).ask()
            return "yes" if _required(answer) else "no"
        if kind == "password":
            return str(_required(questionary.password(question.prompt, style=_STYLE).ask()))
        if kind == "placement":
            return self._placement(question, default, asking)
        answer = questionary.text(question.prompt, default=default or "", style=_STYLE).ask()
        return str(_required(answer))

    def _placement(self, question: Question, default: str | None, asking: Asking) -> str:
        current = dict(
            part.strip().split("=", 1) for part in (default or "").split(",") if "=" in part
        )
        hosts = asking.host_names()
        out = []
        for service in asking.get("services", []):
            answer = questionary.select(
                f"Which host runs {service}?",
                choices=hosts,
                default=current.get(service) if current.get(service) in hosts else hosts[0],
                style=_STYLE,
            ).ask()
            out.append(f"{service}={_required(answer)}")
        return ", ".join(out)

    def confirm(self, message: str, default: bool = True) -> bool:
        return bool(_required(questionary.confirm(message, default=default, style=_STYLE).ask()))

    def password(self, message: str) -> str:
        return str(_required(questionary.password(message, style=_STYLE).ask()))


def _required(answer: Any) -> Any:
    """questionary returns None on Ctrl-C: stop, having written nothing more."""
    if answer is None:
        raise KeyboardInterrupt
    return answer


def summary_table(answers: dict[str, Any]) -> Table:
    """The answers as they will be used (secrets hidden)."""
    table = Table(title="Your site", show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("answer")
    for question in QUESTIONS:
        if question.key in answers and question.key != "admin-password-file":
            table.add_row(question.key, shown(question, answers[question.key]))
    return table


_MARKS = {"install": "[green]+[/green]", "change": "[yellow]~[/yellow]", "remove": "[red]-[/red]"}


def plan_table(plan: Plan, *, detail: int = 12) -> Table:
    """Per host: how many steps install, change or remove something, and which."""
    table = Table(title="The plan (pyinfra's dry run)", title_justify="left")
    table.add_column("host", style="bold")
    table.add_column("install", justify="right")
    table.add_column("change", justify="right")
    table.add_column("remove", justify="right")
    table.add_column("steps")
    for host in plan.hosts:
        counts = plan.counts(host)
        if host in plan.unreachable:
            table.add_row(host, "", "", "", "[red]could not be reached[/red]")
            continue
        steps = [f"{_MARKS[c.kind]} {c.operation}" for c in plan.changes.get(host, [])]
        if len(steps) > detail:
            steps = steps[:detail] + [f"… and {len(steps) - detail} more"]
        table.add_row(
            host,
            str(counts["install"]),
            str(counts["change"]),
            str(counts["remove"]),
            "\n".join(steps) or "[dim]nothing to do[/dim]",
        )
    return table


class ApplyDisplay:
    """Progress of a run, per host and operation (see the module's docstring)."""

    def __init__(self, hosts: list[str]):
        self.live = console.is_terminal
        self.hosts = hosts
        self.progress = Progress(
            TextColumn("[bold]{task.fields[host]:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.count = 0

    def __enter__(self) -> ApplyDisplay:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "begin":
            for host in self.hosts:
                total = event["hosts"].get(host)
                failed = host in event.get("failed", [])
                self.tasks[host] = self.progress.add_task(
                    "[red]could not be reached[/red]" if failed else "connected",
                    host=host,
                    total=total or 1,
                )
                if not self.live and failed:
                    console.print(f"{host:<8} [red]could not be reached[/red]")
        elif kind == "start":
            for host in event["hosts"]:
                if host in self.tasks:
                    self.progress.update(self.tasks[host], description=event["op"])
        elif kind == "end":
            self.count += 1
            marks = []
            for host, result in event["results"].items():
                status = result["status"]
                if host in self.tasks:
                    self.progress.advance(self.tasks[host])
                    if status == "error":
                        self.progress.update(
                            self.tasks[host], description=f"[red]failed: {event['op']}[/red]"
                        )
                if status in ("changed", "error"):
                    word = "[red]failed[/red]" if status == "error" else "changed"
                    marks.append(f"{host} {word}")
            if not self.live and marks:
                console.print(f"[{self.count:>3}] {event['op']}: {', '.join(marks)}")

    def finish(self) -> None:
        if self.live:
            for task in self.tasks.values():
                description = self.progress.tasks[task].description
                if not description.startswith("[red]"):
                    self.progress.update(task, description="[green]done[/green]")
            self.progress.refresh()


def report_failures(
    site: Any, failures: list[Failure], log: Path, *, again: str = "`srht-install`"
) -> None:
    """Each failed host, the step it failed at and the end of its output,
    and what to do: fix it, then run ``again`` (what is done is skipped)."""
    for failure in failures:
        target = site.topology.hosts.get(failure.host)
        where = f" ({target.user}@{target.address}:{target.port})" if target else ""
        if failure.host == "?":
            errors.print("[red]✗ the deploy stopped before it got to the hosts.[/red]")
            what = "fix the cause shown above"
        elif failure.step is None:
            errors.print(f"[red]✗ host {failure.host}{where} could not be reached.[/red]")
            what = (
                f"check that it is up and that `ssh {target.user}@{target.address}` works"
                if target
                else "check the host"
            )
        else:
            errors.print(
                f'[red]✗ host {failure.host}{where} failed at step "{failure.step}".[/red]'
            )
            what = "fix the cause shown above"
        if failure.output:
            for line in failure.output.strip().splitlines()[-12:]:
                errors.print(f"    {line}", markup=False, highlight=False)
        errors.print(
            f"  What to do: {what} (pyinfra's full log: {log}), then run "
            f"{again} again. What is done stays done and is skipped: the "
            "run resumes where it stopped."
        )


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
