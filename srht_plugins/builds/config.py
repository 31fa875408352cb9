"""builds' config: the ``[builds]`` section.

Limits apply to every job; the runner enforces them with the kernel's
resource control (cgroups), a size-limited file system and its own clock.
"""

from __future__ import annotations

from srht_core import Choice, Integer, Key, List, PathValue, Section, Url

#: Where jobs' host user ids start: root in a job is this user on the runner.
UID_BASE = 0x70000000

SCHEMA = [
    Section(
        "builds",
        description="Continuous integration: jobs described by manifests, run in throwaway "
        "systemd-nspawn containers on the runner hosts.",
        keys=(
            Key(
                "runner-hosts",
                List(),
                default=None,
                example="",
                description="The hosts (named in [deploy] hosts) that run jobs: srht "
                "deploy installs a runner on each (the srht-builds-runner unit, running "
                "`srht builds runner` as root). Required when deploying builds.",
            ),
            Key(
                "images",
                PathValue(),
                default=None,
                example="",
                description="A YAML file of images jobs may use besides the built-in "
                "debian/bookworm: NAME: {suite, packages} (built with mmdebstrap) or "
                "NAME: {tarball} (a root file system). See docs/builds.md.",
            ),
            Key(
                "network",
                Choice(("none", "mirror", "full")),
                default="none",
                example="none",
                description="What a job may reach: none (nothing, not even the runner "
                "host), mirror (only package-proxy, for apt) or full (anything the "
                "runner host reaches, except its own loopback).",
            ),
            Key(
                "package-proxy",
                Url(),
                default=None,
                example="",
                description="An apt proxy (apt-cacher-ng, http://ADDRESS:PORT) that images "
                "are built through and that jobs reach with network = mirror. Empty: "
                "images are built straight from debian-mirror.",
            ),
            Key(
                "debian-mirror",
                Url(),
                default="http://deb.debian.org/debian",
                example="http://deb.debian.org/debian",
                description="The Debian archive images are built from.",
            ),
            Key(
                "time-limit",
                Integer(min=10, max=7 * 86400),
                default=3600,
                example="3600",
                description="Seconds a job may run, setup included, before it is stopped "
                "and marked timed out.",
            ),
            Key(
                "memory",
                Integer(min=64, max=1024 * 1024),
                default=2048,
                example="2048",
                description="MiB of memory a job's processes may use (besides its disk, "
                "which also lives in memory).",
            ),
            Key(
                "disk",
                Integer(min=64, max=1024 * 1024),
                default=4096,
                example="4096",
                description="MiB a job may write to its file system (a tmpfs: it counts "
                "against the runner host's memory).",
            ),
            Key(
                "cpus",
                Integer(min=1, max=256),
                default=2,
                example="2",
                description="CPUs' worth of time a job may use.",
            ),
            Key(
                "processes",
                Integer(min=16, max=1_000_000),
                default=4096,
                example="4096",
                description="Processes and threads a job may have at once.",
            ),
            Key(
                "runner-jobs",
                Integer(min=1, max=256),
                default=2,
                example="2",
                description="Jobs one runner runs at once.",
            ),
            Key(
                "runner-dir",
                PathValue(),
                default="/var/lib/srht-builds",
                example="/var/lib/srht-builds",
                description="Where a runner keeps its images and the files of the jobs it runs.",
            ),
            Key(
                "image-refresh",
                Integer(min=3600, max=365 * 86400),
                default=7 * 86400,
                example=str(7 * 86400),
                description="Seconds after which a runner builds its images again "
                "(security updates).",
            ),
            Key(
                "log-limit",
                Integer(min=1, max=1024),
                default=16,
                example="16",
                description="MiB of log a job keeps; what it writes beyond is dropped "
                "and the log says so.",
            ),
            Key(
                "artifact-limit",
                Integer(min=1, max=4096),
                default=64,
                example="64",
                description="MiB of artifacts a job may keep, all together.",
            ),
            Key(
                "runner-timeout",
                Integer(min=10, max=3600),
                default=60,
                example="60",
                description="Seconds without word from the runner of a running job after "
                "which the job is marked failed (or queued again once, if it had not "
                "started).",
            ),
            Key(
                "uid-base",
                Integer(min=65536, max=0x7FFF0000),
                default=UID_BASE,
                example=str(UID_BASE),
                description="The first of the 65536 user ids of the runner host that "
                "jobs' users are mapped to (root in a job is this id, never the host's "
                "root).",
            ),
        ),
    ),
]
