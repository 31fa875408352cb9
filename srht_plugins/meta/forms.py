"""meta's forms. Each field carries its help text (``description``) and
its input attributes (``render_kw``), so the core's ``m.form`` macro
renders a whole form the way every service's forms look."""

from __future__ import annotations

from typing import Any

from wtforms import (
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    URL,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)

from srht_core import ChoiceField, Form, MultipleChoiceField

from .keys import MAX_PGP_LENGTH, MAX_SSH_LENGTH
from .passwords import MAX_LENGTH as PASSWORD_LENGTH
from .passwords import MIN_LENGTH as PASSWORD_MIN

NEW_PASSWORD = f"At least {PASSWORD_MIN} characters."


def _password(label: str, autocomplete: str, description: str = "") -> Any:
    return PasswordField(
        label,
        validators=[InputRequired(), Length(max=PASSWORD_LENGTH)],
        description=description,
        render_kw={"autocomplete": autocomplete},
    )


def _email(label: str = "Email address") -> Any:
    return EmailField(
        label,
        validators=[InputRequired(), Email(), Length(max=256)],
        render_kw={"autocomplete": "email"},
    )


# -- signing up and in -----------------------------------------------------------------


class RegisterForm(Form):
    username = StringField(
        "Username",
        validators=[InputRequired(), Length(max=30)],
        description="2 to 30 characters: lower-case letters a-z, digits 0-9, _ and -, "
        "not starting with a digit or -.",
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    email = _email()
    password = _password("Password", "new-password", NEW_PASSWORD)


class LoginForm(Form):
    username = StringField(
        "Username or email",
        validators=[InputRequired(), Length(max=256)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = _password("Password", "current-password")
    return_to = HiddenField()


class TotpForm(Form):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[InputRequired(), Length(max=64)],
        description="Six digits from the app, or one of the recovery codes you saved.",
        # Not inputmode=numeric: recovery codes have letters, which a phone's
        # number pad cannot type.
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "none", "autofocus": True},
    )


class EmailForm(Form):
    email = _email()


class ResetForm(Form):
    password = _password("New password", "new-password", NEW_PASSWORD)


# -- settings ---------------------------------------------------------------------------


class ProfileForm(Form):
    name = StringField(
        "Name", validators=[Optional(), Length(max=256)], render_kw={"autocomplete": "name"}
    )
    url = StringField(
        "Website",
        validators=[
            Optional(),
            Length(max=256),
            URL(message="Enter a web address like https://example.org."),
            # wtforms' URL accepts any scheme, javascript: included; links must be web pages.
            Regexp(r"(?i)^https?://", message="The address must start with https:// or http://."),
        ],
        description="https://...",
        render_kw={"autocomplete": "url", "inputmode": "url"},
    )
    location = StringField("Location", validators=[Optional(), Length(max=256)])
    bio = TextAreaField(
        "Bio (Markdown)",
        validators=[Optional(), Length(max=4096)],
        description="Markdown. At most 4096 characters.",
        render_kw={"rows": 6},
    )


class PasswordChangeForm(Form):
    current = _password("Current password", "current-password")
    password = _password("New password", "new-password", NEW_PASSWORD)


class EmailChangeForm(Form):
    email = _email("New email address")
    password = _password("Current password", "current-password")


class TotpConfirmForm(Form):
    code = StringField(
        "Code from your authenticator app",
        validators=[InputRequired(), Length(max=16)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
    )


class TotpCheckForm(Form):
    """Proof it is the owner at the keyboard: a current code or the password."""

    code = StringField(
        "Code from your authenticator app",
        validators=[Optional(), Length(max=16)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    password = PasswordField(
        "or your password",
        validators=[Optional(), Length(max=PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )


class TokenForm(Form):
    comment = StringField(
        "Comment",
        validators=[Optional(), Length(max=256)],
        description="What the token is for, to recognise it later.",
    )
    #: Its choices are the scopes of the enabled services (see ``scope_choices``).
    scopes = MultipleChoiceField("Scopes", [])
    expires = IntegerField(
        "Expires after (days)",
        validators=[Optional(), NumberRange(min=1, max=3650)],
        description="Leave empty for a token that does not expire.",
        render_kw={"inputmode": "numeric", "min": 1, "max": 3650},
    )


def scope_choices(scopes: dict[str, str]) -> list[tuple[str, str]]:
    """Checkbox choices for ``{"meta/keys": "description"}``: each scope to
    read and to read and write."""
    return [
        (f"{name}:{access}", f"{verb} {description} ({name}:{access})")
        for name, description in sorted(scopes.items())
        for access, verb in (("RO", "Read"), ("RW", "Read and write"))
    ]


# -- keys -------------------------------------------------------------------------------


class SSHKeyForm(Form):
    key = TextAreaField(
        "SSH public key",
        validators=[
            InputRequired(),
            Length(
                max=MAX_SSH_LENGTH,
                message=f"That is too long for an SSH public key (at most "
                f"{MAX_SSH_LENGTH} characters).",
            ),
        ],
        description="The contents of ~/.ssh/id_ed25519.pub (or another .pub file). Ed25519, "
        "ECDSA, or RSA of at least 2048 bits.",
        render_kw={"rows": 4, "spellcheck": "false"},
    )


class PGPKeyForm(Form):
    key = TextAreaField(
        "PGP public key",
        validators=[
            InputRequired(),
            Length(
                max=MAX_PGP_LENGTH,
                message=f"That is too long for a PGP public key (at most "
                f"{MAX_PGP_LENGTH // 1024} KiB).",
            ),
        ],
        description="The output of: gpg --export --armor YOUR-KEY-ID",
        render_kw={"rows": 8, "spellcheck": "false"},
    )


# -- OAuth2 clients ---------------------------------------------------------------------

CLIENT_TYPES = [
    ("confidential", "Confidential: runs on a server and keeps a secret"),
    ("public", "Public: a native or in-browser app that cannot keep a secret (must use PKCE)"),
]


class ClientForm(Form):
    name = StringField(
        "Name", validators=[InputRequired(), Length(max=256)], render_kw={"autofocus": True}
    )
    description = TextAreaField(
        "Description (optional)",
        validators=[Optional(), Length(max=2048)],
        render_kw={"rows": 3},
    )
    url = StringField(
        "Website (optional)",
        validators=[Optional(), URL(require_tld=False), Length(max=256)],
        render_kw={"placeholder": "https://app.example.com"},
    )
    redirect_uris = TextAreaField(
        "Redirect URIs, one per line",
        validators=[InputRequired(), Length(max=6000)],
        description="Authorization requests must name one of these exactly. https, http only "
        "on loopback, or a private-use scheme like com.example.app:/callback.",
        render_kw={"rows": 3, "placeholder": "https://app.example.com/oauth/callback"},
    )
    client_type = ChoiceField(
        "Client type",
        CLIENT_TYPES,
        default="confidential",
        message="Choose confidential or public.",
    )


# -- administration ---------------------------------------------------------------------


class SuspendForm(Form):
    notice = TextAreaField(
        "Notice shown to the user",
        validators=[
            InputRequired(message="Say why, so the user knows what happened."),
            Length(max=4096),
        ],
        render_kw={"rows": 3},
    )
