"""Forms: WTForms through Flask-WTF, with CSRF tokens, and the helpers that
turn validation errors into the shapes pages and APIs show.

Pages render fields with the ``field`` macro of ``srht/macros.html``, which
shows each field's errors next to it; APIs answer
``{"errors": [{"field": ..., "reason": ...}]}`` through :func:`api_validate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import Field, FieldList, FormField, StringField
from wtforms.validators import AnyOf, InputRequired, Length, ValidationError

from .errors import ApiError, Problem
from .text import text_problem

if TYPE_CHECKING:
    from .service import EventType

__all__ = [
    "ChoiceField",
    "Form",
    "MultipleChoiceField",
    "WebhookForm",
    "api_validate",
    "choice_pairs",
    "field_at",
    "fields_with_errors",
    "form_errors",
]


class Form(FlaskForm):  # type: ignore[misc]
    """Base class of every form: a FlaskForm with a CSRF token, whose text
    fields refuse text no column can store (NUL, lone surrogates) with an
    error next to the field, and which shows a :class:`~srht_core.Problem`
    an operation raised next to the field it names (:meth:`show`).

    A form may hold a list of sub-forms (a ``FieldList`` of ``FormField``,
    such as paste's files): a problem names their fields as the API does,
    ``files[1].content``, and ``m.form_errors`` lists them as "File 2:
    Contents" (the sub-form field's label, its number, the field's label).
    """

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str):
                reason = text_problem(field.data)
                if reason is not None:
                    field.errors = [*field.errors, reason[0].upper() + reason[1:] + "."]
                    valid = False
        return valid

    def show(self, problem: Problem) -> None:
        """Show ``problem`` next to the field it names (see
        :func:`field_at`), or above the form when it names none of this
        form's fields."""
        field = field_at(self, problem.field or "")
        if field is not None and field.name != "csrf_token":
            field.errors = [*field.errors, problem.reason]
        else:
            self.form_errors.append(problem.reason)


class ChoiceField(Field):  # type: ignore[misc]
    """One value out of ``choices`` (``[(value, label), ...]``), shown as a
    radio group, or as a select with ``select=True``. wtforms' own choice
    fields change how choices are given between the versions srht supports
    (3.0 to 3.3); this one takes them one way.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        label: str,
        choices: list[tuple[str, str]],
        *,
        select: bool = False,
        message: str = "Choose one of the options.",
        **kwargs: Any,
    ):
        values = [value for value, _label in choices]
        validators = [*kwargs.pop("validators", []), AnyOf(values, message=message)]
        super().__init__(label, validators, **kwargs)
        self.choices = choices
        self.select = select

    def process_formdata(self, valuelist: list[str]) -> None:
        if valuelist:  # absent: keep the default
            self.data = valuelist[0]


class MultipleChoiceField(Field):  # type: ignore[misc]
    """Any number of values out of ``choices`` (``[(value, label), ...]``),
    shown as a list of checkboxes.

    .. versionadded:: 0.1
    """

    def __init__(self, label: str, choices: list[tuple[str, str]], **kwargs: Any):
        kwargs.setdefault("default", [])
        super().__init__(label, **kwargs)
        self.choices = choices

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = list(valuelist)

    def pre_validate(self, form: Any) -> None:
        # ValidationError, not ValueError: wtforms 3.3 shows only the former
        # next to the field (and lets a ValueError through as a 500).
        values = {value for value, _label in self.choices}
        for chosen in self.data or ():
            if chosen not in values:
                raise ValidationError(f"{chosen!r} is not one of the options.")


class WebhookForm(Form):
    """The form of a webhook settings page that adds a webhook: its URL
    and the events it is told of, one checkbox per event the service
    emits (``m.webhook_settings`` shows it). Whether the URL may be called
    is the service's check, when it stores the webhook (``url_problem``).

    :param events: the events to offer, as the service declares them
        (``webhook_events``), or the part of them this page subscribes to.

    .. versionadded:: 0.1
    """

    url = StringField(
        "URL",
        validators=[InputRequired(), Length(max=2048)],
        description="http:// or https://",
        render_kw={"type": "url"},
    )
    events = MultipleChoiceField("Events", [])

    def __init__(self, events: Iterable[EventType], *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.events.choices = [(e.name, f"{e.name}: {e.description}") for e in events]


_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\])*")
_STEP = re.compile(r"[A-Za-z_]\w*|\d+")


def field_at(form: Any, path: str) -> Field | None:
    """The field of ``form`` that ``path`` names the way an API names the
    fields of a body: ``title``, or ``files[1].content`` for the field
    ``content`` of the second entry of the list of sub-forms ``files``;
    ``None`` when the form has no such field.

    .. versionadded:: 0.1
    """
    if not _PATH.fullmatch(path):
        return None
    node: Any = form
    for step in _STEP.findall(path):
        if step.isdigit():
            entries = node.entries if isinstance(node, FieldList) else []
            if int(step) >= len(entries):
                return None
            node = entries[int(step)]
            continue
        if isinstance(node, FormField):
            node = node.form
        fields = getattr(node, "_fields", None)
        if isinstance(node, Field) or fields is None or step not in fields:
            return None
        node = fields[step]
    # A whole sub-form is not a field a problem can be shown next to.
    return node if isinstance(node, Field) and not isinstance(node, FormField) else None


def fields_with_errors(form: Any) -> list[tuple[Field, str, list[str]]]:
    """``(field, label, errors)`` for each field of ``form`` that has
    errors, in the form's order, the CSRF token left out: what
    ``m.form_errors`` lists. A list of sub-forms contributes its own errors
    (under its label) and each entry's fields, labelled "File 2: Contents"
    (the entry's label and number, then the field's).

    .. versionadded:: 0.1
    """
    out: list[tuple[Field, str, list[str]]] = []

    def walk(fields: Any, prefix: str) -> None:
        for field in fields:
            if field.name == "csrf_token" or field.type == "CSRFTokenField":
                continue
            label = prefix + field.label.text
            if isinstance(field, FieldList):
                own = [str(error) for error in field.errors if isinstance(error, str)]
                if own:
                    out.append((field, label, own))
                for number, entry in enumerate(field.entries, start=1):
                    name = f"{prefix}{entry.label.text} {number}"
                    if isinstance(entry, FormField):
                        walk(entry.form, name + ": ")
                    elif entry.errors:
                        out.append((entry, name, [str(error) for error in entry.errors]))
            elif isinstance(field, FormField):
                walk(field.form, label + ": ")
            elif field.errors:
                out.append((field, label, [str(error) for error in field.errors]))

    walk(form, "")
    return out


def choice_pairs(field: Any) -> list[tuple[str, str]]:
    """``(value, label)`` for each choice of any choice field (ours, or
    wtforms' with choices given as pairs, plain values or ``SelectChoice``);
    the templates' radio groups and checkbox lists read choices through it."""
    choices = getattr(field, "choices", None) or []
    if isinstance(choices, dict):
        choices = list(choices.items())
    pairs = []
    for choice in choices:
        if isinstance(choice, tuple):
            pairs.append((str(choice[0]), str(choice[1])))
        elif hasattr(choice, "value") and hasattr(choice, "label"):
            pairs.append((str(choice.value), str(choice.label)))
        else:
            pairs.append((str(choice), str(choice).capitalize()))
    return pairs


def form_errors(form: Any) -> list[tuple[str | None, str]]:
    """``(field, reason)`` for every error of a validated form."""
    out: list[tuple[str | None, str]] = []
    for name, messages in form.errors.items():
        for message in messages if isinstance(messages, list) else [messages]:
            out.append((name if name != "csrf_token" else None, str(message)))
    return out


def api_validate(form_class: type[Any], data: Any) -> Any:
    """Validate JSON ``data`` with a form class (without CSRF, as APIs are
    token-authenticated); raise :class:`ApiError` 400 listing every error."""
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    flat = MultiDict({k: v for k, v in data.items() if not isinstance(v, list | dict)})
    form = form_class(formdata=flat, meta={"csrf": False})
    if not form.validate():
        raise ApiError(400, errors=form_errors(form))
    return form
