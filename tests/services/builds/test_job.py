"""A job's log and end as the runner reads them from its container: the
driver's markers split the output into setup and tasks, wherever the pipe
cuts it, and a stopped job's reason names where it was when it was stopped,
whatever the dying container prints after that. (Containers themselves are
in test_runner.py.)"""

from __future__ import annotations

from pathlib import Path

from srht_plugins.builds.runner.job import JobRun, LogSplitter, RunnerContext
from srht_plugins.builds.runner.service import Service

NONCE = "5eed"


def mark(text: str) -> bytes:
    return f"\n{NONCE}:{text}\n".encode()


OUTPUT = (
    b"Setting up the job."
    + mark("end:0:0")
    + mark("start:1")
    + b"+ make\nbuilt"
    + mark("end:1:0")
    + mark("start:2")
    + b"+ make check\nfailed"
    + mark("end:2:2")
)


def test_markers_split_the_log_however_the_pipe_cuts_it() -> None:
    whole = LogSplitter(NONCE).feed(OUTPUT, final=True)
    for size in (1, 2, 3, 7, 13):
        splitter = LogSplitter(NONCE)
        pieces, events = [], []
        for at in range(0, len(OUTPUT), size):
            got = splitter.feed(OUTPUT[at : at + size])
            pieces += got[0]
            events += got[1]
        got = splitter.feed(b"", final=True)
        pieces += got[0]
        events += got[1]
        assert events == whole[1]
        joined: dict[int, bytes] = {}
        for position, data in pieces:
            joined[position] = joined.get(position, b"") + data
        assert joined == {
            0: b"Setting up the job.",
            1: b"+ make\nbuilt",
            2: b"+ make check\nfailed",
        }
    assert whole[1] == [
        ("end", 0, 0),
        ("start", 1, None),
        ("end", 1, 0),
        ("start", 2, None),
        ("end", 2, 2),
    ]


def job(tasks: tuple[str, ...] = ("slow", "after")) -> JobRun:
    context = RunnerContext("r1", Path("/nonexistent"), Service("r1"), 100000)
    spec = {
        "id": 7,
        "image": "debian/bookworm",
        "tasks": [[name, "true"] for name in tasks],
        "limits": {"time": 45},
    }
    return JobRun(context, spec)


def stop_for_time(run: JobRun) -> None:
    run.timed_out, run.stopping = True, "timeout"
    run.kill()  # no container here: it only fixes where the job was


def test_a_job_stopped_in_a_task_names_it_even_if_the_task_end_arrives_later() -> None:
    """What CI saw on a loaded machine: the driver outlived its task long
    enough to print the task's end (killed, 137) before it died too."""
    run = job()
    run._apply([("end", 0, 0), ("start", 1, None)])
    stop_for_time(run)
    run._apply([("end", 1, 137)])
    assert run.outcome(137) == (
        "timeout",
        "The job ran past its time limit of 45 s and was stopped during task slow.",
    )
    assert run.task_codes == {}  # the service marks it timed out, not failed
    assert run.task_updates == [(1, "running")]


def test_a_job_stopped_in_its_setup_or_between_tasks_says_so() -> None:
    run = job()
    stop_for_time(run)
    assert run.outcome(None)[1].endswith("was stopped during its setup.")

    run = job()
    run._apply([("end", 0, 0)])
    stop_for_time(run)
    assert run.outcome(None)[1].endswith("was stopped before task slow.")

    run = job()
    run._apply([("end", 0, 0), ("start", 1, None), ("end", 1, 0)])
    run.stopping = "cancelled by its owner"
    run.kill()
    assert run.outcome(None) == ("cancelled", "Cancelled by its owner before task after.")


def test_a_failing_task_is_named_when_nothing_stopped_it() -> None:
    run = job()
    run._apply([("end", 0, 0), ("start", 1, None), ("end", 1, 2)])
    assert run.outcome(2) == ("failed", "Task slow failed (exit 2).")
