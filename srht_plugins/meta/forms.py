"""meta's forms."""

from __future__ import annotations

from wtforms import BooleanField, EmailField, PasswordField, StringField, TextAreaField
from wtforms.validators import URL, Email, InputRequired, Length, Optional, Regexp

from srht_core import Form


class RegisterForm(Form):
    username = StringField("Username", validators=[InputRequired(), Length(max=30)])
    email = EmailField("Email address", validators=[InputRequired(), Email(), Length(max=256)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])


class LoginForm(Form):
    username = StringField("Username or email", validators=[InputRequired(), Length(max=256)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])


class TotpForm(Form):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[InputRequired(), Length(max=64)],
    )


class EmailForm(Form):
    email = EmailField("Email address", validators=[InputRequired(), Email(), Length(max=256)])


class ResetForm(Form):
    password = PasswordField("New password", validators=[InputRequired(), Length(max=1024)])


class ProfileForm(Form):
    name = StringField("Name", validators=[Optional(), Length(max=256)])
    url = StringField(
        "Website",
        validators=[
            Optional(),
            Length(max=256),
            URL(message="Enter a web address like https://example.org."),
            # wtforms' URL accepts any scheme, javascript: included; links must be web pages.
            Regexp(r"(?i)^https?://", message="The address must start with https:// or http://."),
        ],
    )
    location = StringField("Location", validators=[Optional(), Length(max=256)])
    bio = TextAreaField("Bio (Markdown)", validators=[Optional(), Length(max=4096)])


class PasswordChangeForm(Form):
    current = PasswordField("Current password", validators=[InputRequired(), Length(max=1024)])
    password = PasswordField("New password", validators=[InputRequired(), Length(max=1024)])


class ConfirmForm(Form):
    confirm = BooleanField("I understand", validators=[InputRequired()])
