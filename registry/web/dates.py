"""A typed date field for the data-entry forms: the same in every browser and language.

The browser's own date input follows the browser's locale, not the registry's language (mm/dd/yyyy
in the German interface on an English browser: a day/month swap waiting to happen) and takes four
Tab stops. This field is one text box: ISO YYYY-MM-DD always, and TT.MM.JJJJ as well when the
interface is German. Beside it the date is echoed spelled out ("1 March 2015", "1. März 2015"),
by the server and live by static/registry/dates.js, so a swapped day and month shows at once; a
calendar button (a mouse aid, not a Tab stop) fills the box through the browser's picker.
"""
import datetime

from django import forms
from django.utils import formats
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

ISO = "%Y-%m-%d"
GERMAN = "%d.%m.%Y"


def accepted_formats():
    return [ISO, GERMAN] if (get_language() or "").startswith("de") else [ISO]


def spelled_out(value):
    """The date in words in the active language ("1 March 2015"), or "" for no date."""
    if not isinstance(value, datetime.date):
        return ""
    return formats.date_format(value, "j. F Y" if (get_language() or "").startswith("de") else "j F Y")


class TypedDateInput(forms.TextInput):
    def __init__(self, attrs=None):
        super().__init__({"inputmode": "numeric", "autocomplete": "off", "size": "10", "maxlength": "10",
                          "data-date": "", **(attrs or {})})

    def format_value(self, value):
        return value.strftime(ISO) if isinstance(value, datetime.date) else value

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        german = (get_language() or "").startswith("de")
        context["widget"]["attrs"]["placeholder"] = "JJJJ-MM-TT" if german else "YYYY-MM-DD"
        return context

    def render(self, name, value, attrs=None, renderer=None):
        box = super().render(name, value, attrs, renderer)
        echo_id = f"{(attrs or {}).get('id', name)}_echo"
        echo = spelled_out(value) if isinstance(value, datetime.date) else spelled_out(_parse(value))
        return format_html(
            '<span class="date-field">{}<button type="button" class="calendar" tabindex="-1" data-calendar-for="{}" '
            'title="{}" aria-label="{}">&#128197;</button></span><span class="date-echo" id="{}" aria-live="polite">{}</span>',
            box, (attrs or {}).get("id", name), _("Choose from a calendar"), _("Choose from a calendar"), echo_id, echo)


def _parse(text):
    for pattern in accepted_formats():
        try:
            return datetime.datetime.strptime((text or "").strip(), pattern).date()
        except ValueError:
            continue
    return None


class TypedDateField(forms.DateField):
    widget = TypedDateInput

    def __init__(self, **kwargs):
        kwargs.pop("input_formats", None)
        super().__init__(**kwargs)
        # Django appends a "(YYYY-MM-DD)" hint by no means; say the format in the error instead.
        self.error_messages["invalid"] = _("Write the date as YYYY-MM-DD, e.g. 2015-03-01.")

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime.date):
            return value
        parsed = _parse(str(value))
        if parsed is None:
            german = (get_language() or "").startswith("de")
            message = _("Write the date as YYYY-MM-DD or DD.MM.YYYY, e.g. 2015-03-01 or 01.03.2015.") if german \
                else self.error_messages["invalid"]
            raise forms.ValidationError(message, code="invalid")
        return parsed
