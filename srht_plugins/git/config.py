"""git's config: the ``[git]`` section."""

from __future__ import annotations

from srht_core import Boolean, Key, PathValue, Section, Text

SCHEMA = [
    Section(
        "git",
        description="Git repositories, browsed on the web and cloned and pushed over HTTP and SSH.",
        keys=(
            Key(
                "repos",
                PathValue(),
                default=None,
                example="/var/lib/srht/git",
                description="Where the bare repositories live, one folder per repository "
                "(named by its id, so renames never move it). Empty: "
                "DATA-DIR/git. The web service and the SSH account must both "
                "be able to write to it.",
            ),
            Key(
                "ssh",
                Boolean(),
                default=True,
                example="yes",
                dev="no",
                description="Whether this site serves git over SSH: the deploy sets up sshd "
                "for ssh-user, and pages and the API give SSH clone URLs. `srht up` runs "
                "no sshd, so its development config says no.",
            ),
            Key(
                "ssh-user",
                Text(),
                default="git",
                example="git",
                description="The system account people push to over SSH (git@host:~user/repo). "
                "sshd looks its keys up with curl (as the account srht-git-keys, which "
                "reads nothing of the site but its curl config, in /etc/srht-secrets) and "
                "runs a forced command for every login, which allows git and nothing else; "
                "both ask the running git service.",
            ),
        ),
    ),
]
