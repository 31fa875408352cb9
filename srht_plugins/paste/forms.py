"""The new-paste form: one slot per file (name and contents) and the
paste's visibility. More slots come from its "Add another file" button,
which re-renders it, so the page works without JavaScript."""

from __future__ import annotations

from typing import Any

from wtforms import FieldList, FormField, StringField, TextAreaField
from wtforms import Form as SubForm

from srht_core import ChoiceField, Form

from .models import PRIVATE, PUBLIC, UNLISTED
from .pastes import MAX_FILES

VISIBILITY_CHOICES = [(PUBLIC, "Public"), (UNLISTED, "Unlisted"), (PRIVATE, "Private")]
VISIBILITY_HELP = {
    PUBLIC: "anyone can see it, and it is listed on your page",
    UNLISTED: "anyone with the link can see it",
    PRIVATE: "only you can see it",
}


def _strip(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _unix_newlines(value: str | None) -> str | None:
    # Browsers send text areas with CRLF line breaks.
    return value.replace("\r\n", "\n") if value is not None else None


class FileForm(SubForm):  # type: ignore[misc]
    filename = StringField(
        "File name",
        filters=[_strip],
        description="Optional. Its extension picks the highlighting (main.py, notes.md).",
    )
    content = TextAreaField("Contents", filters=[_unix_newlines])


class PasteForm(Form):
    files = FieldList(FormField(FileForm, "File"), "Files", min_entries=1, max_entries=MAX_FILES)
    visibility = ChoiceField(
        "Visibility",
        VISIBILITY_CHOICES,
        default=UNLISTED,
        message="Choose public, unlisted or private.",
    )

    def filled_files(self) -> list[Any]:
        """The slots with a name or contents, the blank ones dropped from
        the form too, so that it comes back numbered as its problems are
        (``files[0]`` is the first slot shown)."""
        filled = [entry for entry in self.files if entry.filename.data or entry.content.data]
        self.files.entries = filled or self.files.entries[:1]
        return filled
