"""The data freezes page (/freezes/, coordinators only): the freezes made, a form to freeze the
registry now (all records, or only verified and locked ones), and what changed between two
freezes or since one (per centre and table, as a page and as CSV). The freezes themselves are
written by registry.services.freezes; the survival dashboard and the commands read them."""
import csv
import io

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from registry import access, frozen, selectors, services
from registry.models import Freeze
from registry.security import audit

LIVE = "live"
SHOWN = 500  # changes listed on the page; the CSV has them all
CSV_HEADER = ["centre", "table", "change", "patient_id", "record_id", "fields"]


class FreezeForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=80,
                           help_text=gettext_lazy("e.g. dfs-paper-2026: letters, digits, '.', '_' and '-'."))
    rule = forms.ChoiceField(label=gettext_lazy("Records"), choices=Freeze.RULES, initial=Freeze.ALL,
                             widget=forms.RadioSelect)


class DiffForm(forms.Form):
    freeze = forms.ChoiceField(label=gettext_lazy("From the freeze"))
    against = forms.ChoiceField(label=gettext_lazy("To"))

    def __init__(self, *args, names, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["freeze"].choices = [(name, name) for name in names]
        self.fields["against"].choices = [(LIVE, _("the live data (now)"))] + [(name, name) for name in names]


def require_coordinator(user):
    if not access.is_coordinator(user):
        raise PermissionDenied(_("Only coordinators may manage data freezes."))


def freeze_names():
    return list(selectors.freezes().values_list("name", flat=True))


@login_required
@require_http_methods(["GET", "POST"])
def freeze_list(request):
    require_coordinator(request.user)
    form = FreezeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            freeze = services.freeze_create(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Froze the registry as “%(name)s”.") % {"name": freeze.name})
            return redirect("freeze_list")
    names = freeze_names()
    diff_form = DiffForm(names=names, initial={"freeze": names[0] if names else None, "against": LIVE})
    status = 400 if form.is_bound else 200
    return render(request, "registry/freezes.html",
                  {"freezes": selectors.freezes(), "form": form, "diff_form": diff_form}, status=status)


def _diff(request):
    """(form, freeze, against, changes) of the diff form in the query; changes None when invalid."""
    form = DiffForm(request.GET, names=freeze_names())
    if not form.is_valid():
        return form, None, None, None
    freeze = selectors.freeze_named(form.cleaned_data["freeze"])
    against = None if form.cleaned_data["against"] == LIVE else selectors.freeze_named(form.cleaned_data["against"])
    changes = selectors.freeze_diff(freeze, against)  # a coordinator reads every centre
    audit.log_read(request, patient_ids=[row["patient_id"] for row in changes])
    return form, freeze, against, changes


@login_required
@require_GET
def freeze_diff(request):
    require_coordinator(request.user)
    form, freeze, against, changes = _diff(request)
    context = {"form": form, "freeze": freeze, "against": against, "query": request.GET.urlencode()}
    if changes is None:
        return render(request, "registry/freeze_diff.html", context, status=400)
    return render(request, "registry/freeze_diff.html", {
        **context, "summary": frozen.diff_summary(changes), "changes": changes[:SHOWN], "total": len(changes),
        "more": max(0, len(changes) - SHOWN)})


@login_required
@require_GET
def freeze_diff_csv(request):
    require_coordinator(request.user)
    form, freeze, against, changes = _diff(request)
    if changes is None:
        return HttpResponse(" ".join(e for errors in form.errors.values() for e in errors), status=400,
                            content_type="text/plain; charset=utf-8")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in changes:
        writer.writerow([row["centre"], row["table"], row["change"], row["patient_id"],
                         "" if row["record_id"] is None else row["record_id"], " ".join(row["fields"])])
    name = f"freeze-diff-{freeze.name}-{against.name if against else LIVE}-{timezone.localdate().isoformat()}.csv"
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
