"""meta's config: the ``[meta]`` section and ``[meta::settings]``."""

from __future__ import annotations

from srht_core import Boolean, Integer, Key, Section

SCHEMA = [
    Section(
        "meta",
        description="Accounts and sign-on: the one service that holds passwords, keys and tokens.",
        keys=(
            Key(
                "login-attempts-per-account",
                Integer(min=1),
                default=10,
                example="10",
                description="Failed logins allowed per account in 15 minutes before "
                "further attempts are refused.",
            ),
            Key(
                "login-attempts-per-address",
                Integer(min=1),
                default=30,
                example="30",
                description="Failed logins allowed per client address in 15 minutes.",
            ),
            Key(
                "access-token-lifetime",
                Integer(min=60),
                default=3600,
                example="3600",
                description="Seconds an OAuth2 access token is valid (refresh tokens renew it).",
            ),
        ),
    ),
    Section(
        "meta::settings",
        description="Who may sign up.",
        keys=(
            Key(
                "registration",
                Boolean(),
                default=True,
                example="yes",
                description="Whether anyone may register. With no, only admins create "
                "accounts (`srht meta create-user`).",
            ),
            Key(
                "confirmation-lifetime",
                Integer(min=300),
                default=48 * 3600,
                example="172800",
                description="Seconds an email confirmation or password reset link is valid.",
            ),
        ),
    ),
]
