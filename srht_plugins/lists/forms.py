"""The forms of lists' pages. They check what a browser can get wrong
(missing fields, lengths, choices); the rules of the domain (names,
addresses, who may do what) are checked once, by the operations in
``lists``, ``subscriptions``, ``patches`` and ``events``, for pages and API
alike. The core's macros render them (``m.form``, ``m.field``)."""

from __future__ import annotations

from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from srht_core import ChoiceField, Form

from .models import PATCHSET_STATUSES, POST_POLICIES, VISIBILITIES

MAX_DESCRIPTION = 8192

VISIBILITY_CHOICES = [
    ("public", "Public: anyone may read it, and it is listed"),
    ("unlisted", "Unlisted: anyone with the link may read it; not listed"),
    ("private", "Private: only you and the members you name; mail from others is refused"),
]
assert [v for v, _ in VISIBILITY_CHOICES] == list(VISIBILITIES)
POLICY_CHOICES = [
    ("anyone", "Anyone may post"),
    ("subscribers", "Subscribers, members and the addresses below may post"),
    ("members", "Only members and the addresses below may post"),
]
assert [v for v, _ in POLICY_CHOICES] == list(POST_POLICIES)
NAME_HELP = (
    "1 to 128 letters, digits, dots, dashes and underscores, starting with a letter or "
    "digit; it becomes part of the list's address and URL."
)


def status_label(status: str) -> str:
    """``needs_revision`` → ``needs revision``."""
    return status.replace("_", " ")


STATUS_CHOICES = [(s, status_label(s).capitalize()) for s in PATCHSET_STATUSES]


class ListForm(Form):
    name = StringField(
        "Name",
        validators=[InputRequired(), Length(max=128)],
        description=NAME_HELP,
        render_kw={"autofocus": True, "spellcheck": "false", "autocomplete": "off"},
    )
    description = TextAreaField(
        "Description (Markdown)", validators=[Length(max=MAX_DESCRIPTION)], render_kw={"rows": 4}
    )
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES, default="public")


class ListSettingsForm(Form):
    description = TextAreaField(
        "Description (Markdown)", validators=[Length(max=MAX_DESCRIPTION)], render_kw={"rows": 5}
    )
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES)
    post_policy = ChoiceField(
        "Who may post",
        POLICY_CHOICES,
        description="The owner and the members may always post.",
    )
    allowed_senders = TextAreaField(
        "Addresses that may always post",
        validators=[Length(max=100_000)],
        description="One address a line.",
        render_kw={"rows": 4, "spellcheck": "false"},
    )
    moderated = BooleanField(
        "Hold posts from others for my approval",
        description="Without it, mail from a sender who may not post is refused (the sender "
        "gets a bounce saying why).",
    )
    rewrite_from = BooleanField(
        "Send posts on from the list's address",
        description="For authors whose domain's DMARC policy would have the copies rejected: "
        "From becomes the list, Reply-To the author. Leave it off unless copies bounce.",
    )
    archived = BooleanField(
        "Archived", description="An archived list keeps its archive and takes no more posts."
    )


class MemberForm(Form):
    username = StringField(
        "Username",
        validators=[InputRequired(), Length(max=64)],
        description="They must have visited this service once.",
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )


class PatchsetStatusForm(Form):
    status = ChoiceField("Status", STATUS_CHOICES, select=True)
