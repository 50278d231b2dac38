"""Queries (data clarification requests) in the web application: the worklist (/queries/), a query's
thread with the moves the user's role may make, raising a query on a record's field, and what the
patient page and the record form show of them. Thin views over registry.access (who may see and do
what), registry.selectors and registry.services.queries (every step).

A query of another centre is a 404, as its patient is; a move the role may not make is a 403.
Every page that shows patient-level data records the read (registry.security.audit).
"""
from axes.helpers import get_client_ip_address
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from registry import access, rules, selectors, soft_checks
from registry.dictionary import TABLE_MODELS
from registry.models import Patient, Query, QueryMessage
from registry.security import audit
from registry.services import queries as services
from registry.web import views
from registry.web.forms import RECORD_FORMS
from registry.web.presentation import label, shown

PAGE_SIZE = 25
# The URL segment of each record type (as the record pages name them) and its table.
KIND_TABLES = {"patient": "patients", **{kind: services.TABLE_OF[form._meta.model] for kind, form in RECORD_FORMS.items()}}
TABLE_KINDS = {table: kind for kind, table in KIND_TABLES.items()}
ICONS = {Query.OPEN: "?", Query.ANSWERED: "\u21A9", Query.CLOSED: "\u2714", Query.REOPENED: "\u21BB"}
WORKLIST = "worklist"


# --- how a query reads -------------------------------------------------------------------------

def field_label(query):
    if query.field:
        return label(TABLE_MODELS[query.table], query.field)
    check = soft_checks.BY_CODE.get(query.check_code)
    return capfirst(check.about) if check and check.about else _("The whole record")


def shown_value(query, text):
    """A value as a message keeps it (registry.services.queries.value_text), as a person reads it."""
    if not query.field:
        return text or "—"
    field = TABLE_MODELS[query.table]._meta.get_field(query.field)
    try:
        value = field.to_python(text) if text != "" else None
    except ValidationError:
        return text
    return shown(TABLE_MODELS[query.table], query.field, value)


def message_text(query, message):
    """What a step said: a person's words, or the system's in the reader's language."""
    if message.username or message.author_id:
        return message.text
    value = shown_value(query, message.value)
    if message.system_note == QueryMessage.FIRED:
        return soft_checks.describe(query.check_code, value)
    if message.system_note == QueryMessage.RECORD_DELETED:
        return _("Closed by the registry: the record was deleted.")
    return _("Closed by the registry: the value is no longer implausible (now %(value)s).") % {"value": value}


def origin_text(query):
    if query.origin == Query.SOFT_CHECK:
        return _("soft check")
    return _("raised by %(user)s") % {"user": query.raised_by.get_username()} if query.raised_by else _("raised by a person")


def summary(query):
    """What a list shows of one query (its messages prefetched)."""
    thread = list(query.messages.all())
    last = thread[-1] if thread else None
    return {
        "query": query, "icon": ICONS[query.state], "state": query.get_state_display(),
        "record": capfirst(TABLE_MODELS[query.table]._meta.verbose_name), "field": field_label(query),
        "origin": origin_text(query), "age_days": (timezone.now() - query.created_at).days,
        "last": message_text(query, last) if last else "", "last_at": last.created_at if last else None,
        "last_by": (last.username or _("the registry")) if last else "",
        "url": reverse("query_detail", args=[query.pk]),
    }


def with_messages(queries):
    return queries.select_related("raised_by").prefetch_related(
        Prefetch("messages", queryset=QueryMessage.objects.order_by("id")))


# --- the patient page and the record form ------------------------------------------------------

def attach_to_statuses(user, patient, statuses):
    """Add to each record's status (views.record_status_info) its pending queries and, for a user
    who may raise one, where to raise it (one query for the patient's queries)."""
    pending = with_messages(access.queries_readable(user).filter(patient_id=patient.pk).exclude(state=Query.CLOSED))
    by_record = {}
    for query in pending.order_by("created_at", "id"):
        by_record.setdefault((query.table, query.record_pk), []).append(summary(query))
    may_raise = access.can_raise_query(user, patient.centre_id)
    for (model, pk), status in statuses.items():
        table = services.TABLE_OF[model]
        status["queries"] = by_record.get((table, str(pk)), [])
        status["raise_url"] = reverse("query_new", args=[patient.pk, TABLE_KINDS[table], pk]) if may_raise else ""


def query_to_answer(request, record):
    """The query named by ?query= on a record's form (404 unless it is readable and about this
    record), or None."""
    pk = request.GET.get("query", "")
    if not pk:
        return None
    query = access.queries_readable(request.user).filter(pk=pk).first() if pk.isdecimal() and int(pk) < 2**63 else None
    if query is None or query.table != services.TABLE_OF[type(record)] or query.record_pk != str(record.pk):
        raise Http404
    return query


def answer_by_edit(request, form, query):
    """Save the record form through services.queries.query_answer_by_edit (None on success, else
    the error, as views.save)."""
    return services.query_answer_by_edit(
        user=request.user, query=query, record=form.instance, expected_version=form.cleaned_data.get("version"),
        reason=form.cleaned_data.get("reason"), source="web", ip_address=get_client_ip_address(request))


def edit_url(query, record):
    """Where the nurse corrects the queried field: the record's form, answering the query."""
    if record is None:
        return ""
    if query.table == "patients":
        return reverse("patient_edit", args=[query.patient_id]) + f"?query={query.pk}"
    return reverse("record_edit", args=[query.patient_id, TABLE_KINDS[query.table], record.pk]) + f"?query={query.pk}"


# --- the worklist ------------------------------------------------------------------------------

class QueryFilterForm(forms.Form):
    state = forms.ChoiceField(label=gettext_lazy("Show"), required=False, choices=[
        ("", gettext_lazy("my worklist")), *Query.STATES, ("all", gettext_lazy("every state"))])
    centre = forms.ChoiceField(label=gettext_lazy("Centre"), required=False)
    origin = forms.ChoiceField(label=gettext_lazy("Origin"), required=False,
                               choices=[("", gettext_lazy("all")), *Query.ORIGINS])
    patient = forms.CharField(label=gettext_lazy("Patient ID"), required=False, max_length=21)

    def __init__(self, *args, centres, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["centre"].choices = [("", gettext_lazy("all my centres"))] + [(c.code, str(c)) for c in centres]

    def apply(self, queries, user):
        data = self.cleaned_data
        if not data["state"]:
            queries = queries.filter(worklist_condition(user))
        elif data["state"] != "all":
            queries = queries.filter(state=data["state"])
        for name, lookup in (("centre", "centre"), ("origin", "origin"), ("patient", "patient_id")):
            if data[name]:
                queries = queries.filter(**{lookup: data[name].strip()})
        return queries


def worklist_condition(user):
    """The queries waiting for the user: in each centre, the states of their role's worklist."""
    condition = Q(pk__in=[])
    for code, states in access.query_worklist_states(user).items():
        condition |= Q(state__in=sorted(states)) if code == access.ALL else Q(centre=code, state__in=sorted(states))
    return condition


@login_required
@require_GET
def query_list(request):
    """The user's worklist of queries (or those a filter chooses), and per centre how many wait
    and how old the oldest is."""
    centres = list(access.centres_readable(request.user))
    if request.GET.get("centre") and request.GET["centre"] not in {c.code for c in centres}:
        raise Http404  # another centre's queries: do not even say whether it exists
    form = QueryFilterForm(request.GET or None, centres=centres)
    readable = access.queries_readable(request.user)
    found = form.apply(readable, request.user) if form.is_valid() else readable.filter(worklist_condition(request.user))
    page = Paginator(with_messages(found.order_by("created_at", "id")), PAGE_SIZE).get_page(request.GET.get("page"))
    audit.log_read(request, patient_ids=[query.patient_id for query in page])
    worklist = not (form.is_bound and form.is_valid() and form.cleaned_data["state"])
    return render(request, "registry/queries/list.html", {
        "form": form, "page": page, "rows": [summary(query) for query in page], "worklist": worklist,
        "centres": selectors.query_ages_by_centre(readable),
    })


# --- one query ---------------------------------------------------------------------------------

class MessageForm(forms.Form):
    action = forms.ChoiceField(choices=[("answer", "answer"), ("close", "close"), ("reopen", "reopen")])
    text = forms.CharField(label=gettext_lazy("Message"), required=False, max_length=services.TEXT_MAX_LENGTH,
                           widget=forms.Textarea(attrs={"rows": 3}))


MOVES = {
    "answer": (services.query_answer, gettext_lazy("Answer")),
    "close": (services.query_close, gettext_lazy("Close")),
    "reopen": (services.query_reopen, gettext_lazy("Reopen")),
}


def readable_query(request, pk):
    query = with_messages(access.queries_readable(request.user)).filter(pk=pk).first()
    if query is None:
        audit.log_if_hidden(request, Query, pk)
        raise Http404
    return query


@login_required
@require_http_methods(["GET", "POST"])
def query_detail(request, pk):
    """A query's thread, and a form for each move the user may make on it (a POST makes it)."""
    query = readable_query(request, pk)
    form = MessageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        service, _label = MOVES[form.cleaned_data["action"]]
        try:
            moved = service(user=request.user, query=query, text=form.cleaned_data["text"],
                            ip_address=get_client_ip_address(request))
        except ValidationError as error:
            form.add_error("text", error.messages)
        else:
            messages.success(request, _("Query %(query)s is now %(state)s.") % {
                "query": moved.pk, "state": moved.get_state_display()})
            return redirect("query_detail", query.pk)
    audit.log_read(request, patient_ids=[query.patient_id])
    record = services.record_of(query)
    moves = access.query_moves(request.user, query.centre_id, query.state)
    writable = record is not None and access.can_write_centre(request.user, query.centre_id) \
        and "locked" not in (record.status, Patient.objects.filter(pk=query.patient_id).values_list(
            "status", flat=True).first())
    return render(request, "registry/queries/detail.html", {
        "query": query, "row": summary(query), "form": form,
        "record": rules.describe(record) if record else _("%(record)s (deleted)") % {
            "record": capfirst(TABLE_MODELS[query.table]._meta.verbose_name)},
        "record_exists": record is not None,
        "current": shown_value(query, services.value_text(services.field_value(record, query.field)))
        if record is not None and query.field else "",
        "thread": [(message, message_text(query, message),
                    shown_value(query, message.value) if message.username and message.value else "")
                   for message in query.messages.all()],
        "moves": [(move, label) for move, (_service, label) in MOVES.items() if move in moves],
        "edit_url": edit_url(query, record) if "answer" in moves and query.field and writable else "",
    }, status=400 if form.errors else 200)


# --- raising one -------------------------------------------------------------------------------

class RaiseForm(forms.Form):
    field = forms.ChoiceField(label=gettext_lazy("Field"))
    text = forms.CharField(label=gettext_lazy("Question"), max_length=services.TEXT_MAX_LENGTH,
                           widget=forms.Textarea(attrs={"rows": 4}),
                           help_text=gettext_lazy("What should the centre check or correct?"))

    def __init__(self, *args, record, **kwargs):
        super().__init__(*args, **kwargs)
        model = type(record)
        self.fields["field"].choices = [(name, f"{label(model, name)}: {shown(model, name, services.field_value(record, name))}")
                                        for name in services.queryable_fields(model)]


def queried_record(request, patient, kind, pk):
    """The readable record a query is raised on (404 otherwise)."""
    if kind == "patient":
        if pk != patient.pk:
            raise Http404
        return Patient.objects.get(pk=patient.pk)
    if kind not in RECORD_FORMS or not pk.isdecimal() or int(pk) >= 2**63:
        raise Http404
    return views.patient_record(request, patient, kind, pk)


@login_required
@require_http_methods(["GET", "POST"])
def query_new(request, patient_id, kind, pk):
    """Raise a query on a field of one record (a monitor of the centre, or a coordinator)."""
    patient = views.readable_patient(request, patient_id)
    if not access.can_raise_query(request.user, patient.centre_id):
        raise PermissionDenied(_("Only a monitor of the centre or a coordinator may raise a query."))
    record = queried_record(request, patient, kind, pk)
    form = RaiseForm(request.POST or None, record=record, initial={"field": request.GET.get("field", "")})
    if request.method == "POST" and form.is_valid():
        try:
            query = services.query_raise(user=request.user, record=record, field=form.cleaned_data["field"],
                                         text=form.cleaned_data["text"], ip_address=get_client_ip_address(request))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Query %(query)s raised.") % {"query": query.pk})
            return redirect("query_detail", query.pk)
    if request.method == "GET":  # the form shows the record's values
        audit.log_read(request, patient_ids=[patient.pk])
    return render(request, "registry/queries/new.html", {
        "form": form, "patient": patient, "record": rules.describe(record),
        "cancel_url": views.patient_url(patient, kind if kind != "patient" else "patient"),
    }, status=400 if form.errors else 200)
