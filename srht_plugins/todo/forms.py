"""The forms of todo's pages. They check what a browser can get wrong
(missing fields, lengths, choices); the rules of the domain (names,
colours, who may do what) are checked once, by the operations in
``trackers``, ``tickets``, ``labels`` and ``events``, for pages and API
alike. The core's macros render them (``m.form``, ``m.field``)."""

from __future__ import annotations

from wtforms import ColorField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from srht_core import ChoiceField, Form, MultipleChoiceField

from .models import ACCESS_NAMES, RESOLUTIONS, VISIBILITIES, resolution_label
from .tickets import MAX_TEXT, MAX_TITLE

VISIBILITY_CHOICES = [
    ("public", "Public: listed on your profile, open to the access below"),
    ("unlisted", "Unlisted: open to the access below for anyone with the link, not listed"),
    ("private", "Private: only you and the users you name"),
]
assert [v for v, _ in VISIBILITY_CHOICES] == list(VISIBILITIES)
ACCESS_CHOICES = [(name, name.capitalize()) for name in ACCESS_NAMES]
ACCESS_HELP = (
    "Browse: see the tracker and its tickets. Submit: open tickets. Comment: comment on "
    "tickets. Triage: change status, labels and assignees, manage labels. Edit: edit anyone's "
    "ticket. Private trackers ignore these defaults: only the users you name have access."
)
MARKDOWN_HELP = "Markdown. Refer to other tickets as #12 or ~user/tracker#12."
TRACKER_NAME_HELP = (
    "1 to 128 letters, digits, dots, dashes and underscores, starting with a letter or "
    "digit; it becomes part of the URL."
)


RESOLUTION_CHOICES = [(r, resolution_label(r).capitalize()) for r in RESOLUTIONS]


class TrackerForm(Form):
    name = StringField(
        "Name",
        validators=[InputRequired(), Length(max=128)],
        description=TRACKER_NAME_HELP,
        render_kw={"autofocus": True, "spellcheck": "false", "autocomplete": "off"},
    )
    description = TextAreaField(
        "Description (Markdown)", validators=[Length(max=MAX_TEXT)], render_kw={"rows": 5}
    )
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES, default="public")


class TrackerSettingsForm(Form):
    description = TextAreaField(
        "Description (Markdown)", validators=[Length(max=MAX_TEXT)], render_kw={"rows": 6}
    )
    visibility = ChoiceField("Visibility", VISIBILITY_CHOICES)
    anonymous_access = MultipleChoiceField(
        "What anyone may do, signed in or not", ACCESS_CHOICES, description=ACCESS_HELP
    )
    user_access = MultipleChoiceField("What any signed-in user may do", ACCESS_CHOICES)


class AccessForm(Form):
    username = StringField(
        "Username",
        validators=[InputRequired(), Length(max=64)],
        description="They must have visited this service once.",
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    access = MultipleChoiceField("May", ACCESS_CHOICES, default=["browse"])


class TicketForm(Form):
    title = StringField("Title", validators=[InputRequired(), Length(max=MAX_TITLE)])
    description = TextAreaField(
        "Description (Markdown)",
        validators=[Length(max=MAX_TEXT)],
        description=MARKDOWN_HELP,
        render_kw={"rows": 8},
    )


class CommentForm(Form):
    text = TextAreaField(
        "Comment (Markdown)",
        validators=[Length(max=MAX_TEXT)],
        description=MARKDOWN_HELP,
        render_kw={"rows": 6},
    )
    resolution = ChoiceField("Resolution", RESOLUTION_CHOICES, select=True, default="fixed")


class LabelForm(Form):
    name = StringField("Name", validators=[InputRequired(), Length(max=64)])
    color = ColorField(
        "Colour",
        validators=[InputRequired()],
        default="#0b5cad",
        description="The text on it is black or white, whichever reads better.",
    )


class AssignForm(Form):
    username = StringField("Assign to (username)", validators=[InputRequired(), Length(max=64)])
