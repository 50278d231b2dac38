"""The forms of the import and export pages; the export's rules (formats, de-identification, scopes)
are also those of the REST API's exports (registry/api/exports.py)."""
from django import forms
from django.utils import timezone
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry import access, selectors
from registry.dictionary import TABLE_MODELS, TABLES


class ImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("File"), help_text=gettext_lazy(
        "An Excel workbook (.xlsx) with one sheet per table, a zip of CSV files named after the tables, "
        "or one CSV file."))
    table = forms.ChoiceField(label=gettext_lazy("Table of a single CSV file"), required=False,
                              choices=[("", gettext_lazy("from the file name"))]
                              + [(t, format_lazy("{} ({})", capfirst(TABLE_MODELS[t]._meta.verbose_name_plural), t))
                                 for t in TABLES])
    dry_run = forms.BooleanField(label=gettext_lazy("Dry run: check and count, write nothing"), required=False,
                                 initial=True)


class ExportForm(forms.Form):
    freeze = forms.ChoiceField(label=gettext_lazy("Data"), required=False)
    centre = forms.ChoiceField(label=gettext_lazy("Scope"), required=False)
    file_format = forms.ChoiceField(label=gettext_lazy("Format"), choices=[
        ("csv", "CSV (R, Python, any tool)"), ("xlsx", "Excel (.xlsx)"), ("dta", "Stata (.dta)"),
        ("sav", "SPSS (.sav)")])
    deidentify = forms.ChoiceField(label=gettext_lazy("De-identification"), choices=[
        ("none", gettext_lazy("none: dates as recorded")),
        ("shift-dates", gettext_lazy("shift dates: every date of a patient moved by the same secret offset")),
        ("intervals", gettext_lazy("intervals: days from the index operation instead of dates"))])

    def __init__(self, *args, centres=(), pooled=True, freezes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["centre"].choices = ([("", _("pooled: all centres"))] if pooled else []) + \
            [(c.code, str(c)) for c in centres]
        self.fields["centre"].required = not pooled
        # A data freeze exports the same files whenever asked (registry.services.freezes).
        self.fields["freeze"].choices = [("", _("the live registry, now"))] + [
            (freeze.name, _("freeze %(name)s of %(date)s") % {"name": freeze.name,
                                                             "date": f"{timezone.localtime(freeze.created_at):%Y-%m-%d}"})
            for freeze in freezes]


def export_form(user, data=None):
    """The export form with the scopes `user` may export (access.export_centre_codes): the pooled
    dataset and every centre for a coordinator, a PI's own centres when EXPORT_ALLOW_PI is on."""
    codes = access.export_centre_codes(user)
    centres = list(access.centres_readable(access.SYSTEM if codes == access.ALL else user))
    centres = [c for c in centres if codes == access.ALL or c.code in codes]
    return ExportForm(data, centres=centres, pooled=codes == access.ALL, freezes=selectors.freezes())
