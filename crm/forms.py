"""The base of every form: Flask-WTF's, with WTForms' own messages ("This field is
required.") in the page's language, loaded once per language per process. Flask-WTF
reads their catalogue from disk on every request that builds a form."""

from functools import lru_cache

from babel.support import Translations
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import messages_path


@lru_cache(maxsize=8)
def _wtforms_messages(locale: str) -> Translations:
    return Translations.load(messages_path(), [locale], domain="wtforms")


class Form(FlaskForm):
    class Meta:
        def get_translations(self, form):
            return _wtforms_messages(str(get_locale()))
