"""Queries (data clarification requests): the soft checks that raise and close them, the moves each
role may make, answering by correcting the field, the worklists and the patient page."""
import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from registry import access, selectors, services, soft_checks
from registry.cases import Case, assemble
from registry.models import Metastasectomy, Patient, PrimaryTumour, Query, QueryMessage, SecurityEvent
from registry.services import queries
from registry.transfer.importing import file_import
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date
TODAY = datetime.date.today()


def recent(days=30):
    return TODAY - datetime.timedelta(days=days)


@pytest.fixture
def fresh_case(nurse):
    """A MUC case that fires no soft check: a PM in 2015, and a contact a month ago."""
    patient = f.patient("MUC")
    for record in (f.primary_tumour(patient), f.metastasectomy(patient), f.follow_up(patient, event_date=recent())):
        services.record_save(user=nurse, record=record)
    return patient


def pm_of(patient):
    return Metastasectomy.objects.get(patient=patient)


def save(user, record, **values):
    for name, value in values.items():
        setattr(record, name, value)
    return services.record_save(user=user, record=record, reason=values.pop("reason", None))


def soft_check_queries(patient, check):
    return Query.objects.filter(patient=patient, check_code=check).order_by("id")


def raise_on(monitor, record, field="max_lesion_diameter_mm", text="Please check the diameter."):
    return queries.query_raise(user=monitor, record=record, field=field, text=text, ip_address="10.1.2.3")


# --- the soft checks themselves ----------------------------------------------------------------

def test_a_largest_lesion_over_60_mm_fires_and_one_of_60_mm_does_not():
    patient = f.patient("MUC")
    case = assemble(patient, [f.metastasectomy(patient, max_lesion_diameter_mm=Decimal("60.0")),
                              f.metastasectomy(patient, surgery_date=D(2016, 1, 1), max_lesion_diameter_mm=Decimal("60.5"))])
    found = [(x.check, x.field, x.value) for x in soft_checks.findings(case, today=D(2016, 2, 1))]
    assert found == [("largest_lesion", "max_lesion_diameter_mm", Decimal("60.5"))]


def test_a_hospital_stay_over_60_days_fires():
    patient = f.patient("MUC")
    case = assemble(patient, [f.metastasectomy(patient, hospital_stay_days=61),
                              f.metastasectomy(patient, surgery_date=D(2015, 5, 1), hospital_stay_days=60)])
    assert [(x.check, x.value) for x in soft_checks.findings(case, today=D(2015, 6, 1))] == [("hospital_stay", 61)]


def test_no_contact_for_more_than_12_months_fires_unless_the_patient_is_known_dead():
    patient = f.patient("MUC")
    contact = f.follow_up(patient, event_date=D(2016, 1, 1))
    case = assemble(patient, [f.metastasectomy(patient), contact])
    assert soft_checks.findings(case, today=D(2017, 1, 1)) == []  # exactly 12 months
    [finding] = soft_checks.findings(case, today=D(2017, 1, 2))
    assert (finding.check, finding.record, finding.field, finding.value) == ("no_contact", patient, "", D(2016, 1, 1))
    case.follow_ups.append(f.follow_up(patient, event_date=D(2016, 6, 1), event="death"))
    assert soft_checks.findings(case, today=D(2020, 1, 1)) == []


def test_a_case_without_any_dated_record_asks_nothing_about_contact():
    assert soft_checks.findings(Case(patient=f.patient("MUC")), today=D(2030, 1, 1)) == []


def test_a_recurrence_dated_on_the_index_date_fires_and_one_a_day_later_does_not():
    patient = f.patient("MUC")
    on_index = f.follow_up(patient, event="recurrence", recurrence_site="lung", event_date=D(2015, 4, 1))
    later = f.follow_up(patient, event="recurrence", recurrence_site="lung", event_date=D(2015, 4, 2))
    case = assemble(patient, [f.metastasectomy(patient), f.metastasectomy(patient, surgery_date=D(2015, 9, 1)),
                              on_index, later])
    assert [(x.check, x.record) for x in soft_checks.findings(case, today=D(2015, 10, 1))] == [
        ("recurrence_on_index_date", on_index)]


def test_twelve_months_before_the_29th_of_february_is_the_28th():
    assert soft_checks.months_before(D(2024, 2, 29), 12) == D(2023, 2, 28)
    assert soft_checks.months_before(D(2024, 1, 15), 13) == D(2022, 12, 15)


# --- the soft checks keep their queries in step with the data -----------------------------------

def test_a_value_that_fires_opens_one_query_and_a_second_save_opens_no_second(fresh_case, nurse):
    pm = save(nurse, pm_of(fresh_case), max_lesion_diameter_mm=75)
    save(nurse, pm, max_lesion_diameter_mm=80)
    [query] = soft_check_queries(fresh_case, "largest_lesion")
    assert (query.state, query.origin, query.table, query.record_pk, query.field) == (
        "open", "soft_check", "metastasectomies", str(pm.pk), "max_lesion_diameter_mm")
    [message] = query.messages.all()
    assert (message.action, message.author, message.system_note, message.value) == ("raise", None, "fired", "75")


def test_the_registry_closes_the_query_with_a_message_when_the_value_no_longer_fires(fresh_case, nurse):
    pm = save(nurse, pm_of(fresh_case), hospital_stay_days=90)
    save(nurse, pm, hospital_stay_days=9)
    [query] = soft_check_queries(fresh_case, "hospital_stay")
    assert query.state == "closed" and query.updated_by is None
    closing = query.messages.last()
    assert (closing.action, closing.author, closing.system_note, closing.value) == ("close", None, "plausible", "9")


def test_a_value_that_fires_again_after_the_registry_closed_its_query_opens_a_new_one(fresh_case, nurse):
    pm = save(nurse, pm_of(fresh_case), hospital_stay_days=90)
    pm = save(nurse, pm, hospital_stay_days=9)
    save(nurse, pm, hospital_stay_days=95)
    assert list(soft_check_queries(fresh_case, "hospital_stay").values_list("state", flat=True)) == ["closed", "open"]


def test_a_query_a_monitor_closed_is_not_raised_again_while_the_value_still_fires(fresh_case, nurse, monitor):
    pm = save(nurse, pm_of(fresh_case), max_lesion_diameter_mm=75)
    query = soft_check_queries(fresh_case, "largest_lesion").get()
    queries.query_close(user=monitor, query=query, text="Confirmed with the pathology report.")
    pm = save(nurse, pm, max_lesion_diameter_mm=Decimal("75.5"))
    queries.cases_checks_sync([selectors.case_load(fresh_case)])  # the periodic sync agrees
    assert soft_check_queries(fresh_case, "largest_lesion").count() == 1


def test_an_answered_soft_check_query_waits_for_the_monitor_even_when_the_value_is_corrected(fresh_case, nurse):
    pm = save(nurse, pm_of(fresh_case), max_lesion_diameter_mm=75)
    query = soft_check_queries(fresh_case, "largest_lesion").get()
    queries.query_answer(user=nurse, query=query, text="Will check the report.")
    save(nurse, pm, max_lesion_diameter_mm=25)
    assert Query.objects.get(pk=query.pk).state == "answered"


def test_a_recurrence_on_the_index_date_raises_a_query_on_its_event_date(fresh_case, nurse):
    event = services.record_save(user=nurse, record=f.follow_up(fresh_case, event="recurrence",
                                                                 recurrence_site="lung", event_date=D(2015, 4, 1)))
    query = soft_check_queries(fresh_case, "recurrence_on_index_date").get()
    assert (query.table, query.record_pk, query.field) == ("follow_up", str(event.pk), "event_date")


def test_no_contact_raises_a_query_on_the_patient_and_a_new_contact_closes_it(case, nurse):
    query = soft_check_queries(case, "no_contact").get()  # the case's last news is of 2016
    assert (query.table, query.record_pk, query.field, query.state) == ("patients", case.pk, "", "open")
    services.record_save(user=nurse, record=f.follow_up(case, event_date=recent()))
    assert Query.objects.get(pk=query.pk).state == "closed"


def test_deleting_a_record_closes_every_pending_query_about_it(fresh_case, nurse, monitor):
    later = services.record_save(user=nurse, record=f.metastasectomy(fresh_case, surgery_date=D(2016, 1, 1),
                                                                     max_lesion_diameter_mm=70))
    manual = raise_on(monitor, later, field="side")
    services.record_delete(user=nurse, record=later, reason="entered twice")
    for query in Query.objects.filter(record_pk=str(later.pk)):
        assert query.state == "closed"
        assert query.messages.last().system_note == "record_deleted"
    assert Query.objects.filter(pk=manual.pk, state="closed").exists()


def test_deleting_a_patient_closes_its_queries_which_stay_readable_to_the_centre(case, nurse, coordinator):
    services.record_delete(user=coordinator, record=case, reason="entered twice")
    query = Query.objects.get(check_code="no_contact")
    assert query.state == "closed" and access.queries_readable(nurse).filter(pk=query.pk).exists()


def test_a_save_that_changes_no_finding_sends_no_statement_about_queries(case, nurse):
    pm = pm_of(case)
    with CaptureQueriesContext(connection) as captured:
        save(nurse, pm, lesions_resected=3)
    assert not [q["sql"] for q in captured if "registry_query" in q["sql"]]


def test_an_import_raises_its_soft_check_queries_with_a_fixed_number_of_statements(nurse):
    def imported(patients):
        for _ in range(patients):
            services.record_save(user=nurse, record=f.metastasectomy(f.patient("MUC")))
        rows = "".join(f"{pm.patient_id},{pm.surgery_date},right,vats,wedge,1,75,,R0,,none,70\n"
                       for pm in Metastasectomy.objects.filter(max_lesion_diameter_mm__lt=60))
        header = ("patient_id,surgery_date,side,approach,resection_type,lesions_resected,max_lesion_diameter_mm,"
                  "diameter_source,margin,lymph_node_sampling,clavien_dindo,hospital_stay_days\n")
        with CaptureQueriesContext(connection) as captured:
            report = file_import(user=nurse, data=(header + rows).encode(), filename="metastasectomies.csv")
        assert not report.errors, report.errors
        return len([q for q in captured if "registry_query" in q["sql"]])

    few = imported(2)
    assert Query.objects.filter(check_code__in=["largest_lesion", "hospital_stay"], state="open").count() == 4
    many = imported(20)
    assert Query.objects.filter(check_code__in=["largest_lesion", "hospital_stay"], state="open").count() == 44
    assert many == few


def test_cases_created_in_bulk_get_their_soft_check_queries(nurse):
    patient = Patient(patient_id="MUC-BULK01", centre=f.centre("MUC"), **f.patient_values())
    pm = f.metastasectomy(patient, max_lesion_diameter_mm=90)
    services.cases_create(user=nurse, cases=[assemble(patient, [pm])])
    assert set(Query.objects.filter(patient_id="MUC-BULK01").values_list("check_code", flat=True)) == {
        "largest_lesion", "no_contact"}


def test_the_periodic_sync_opens_the_queries_that_time_or_other_writers_left_unasked(capsys):
    patient = f.patient("MUC")
    f.metastasectomy(patient).save()  # written past the services (a fixture): no query was synced
    assert not Query.objects.exists()
    call_command("soft_checks_sync")
    assert list(Query.objects.values_list("check_code", flat=True)) == ["no_contact"]
    assert "1 soft-check queries pending" in capsys.readouterr().out


# --- who may make which move -------------------------------------------------------------------

MOVES = {"answer": queries.query_answer, "close": queries.query_close, "reopen": queries.query_reopen}
ROLES = ["nurse", "other_nurse", "pi", "monitor", "coordinator"]
# state the query is brought to -> {move: roles that may make it}
ALLOWED = {
    "open": {"answer": {"nurse", "coordinator"}, "close": {"monitor", "coordinator"}, "reopen": set()},
    "answered": {"answer": set(), "close": {"monitor", "coordinator"}, "reopen": {"monitor", "coordinator"}},
    "reopened": {"answer": {"nurse", "coordinator"}, "close": {"monitor", "coordinator"}, "reopen": set()},
    "closed": {"answer": set(), "close": set(), "reopen": {"monitor", "coordinator"}},
}


def query_in(state, case, nurse, monitor):
    query = raise_on(monitor, pm_of(case))
    if state in ("answered", "reopened", "closed"):
        queries.query_answer(user=nurse, query=query, text="It is 15 mm.")
    if state == "reopened":
        queries.query_reopen(user=monitor, query=query, text="The report says 18 mm.")
    if state == "closed":
        queries.query_close(user=monitor, query=query)
    return Query.objects.get(pk=query.pk)


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("move", list(MOVES))
def test_each_role_makes_exactly_the_moves_it_may(case, nurse, other_nurse, pi, monitor, coordinator, state, move):
    users = {"nurse": nurse, "other_nurse": other_nurse, "pi": pi, "monitor": monitor, "coordinator": coordinator}
    outcomes = {}
    for role in ROLES:
        query = query_in(state, case, nurse, monitor)
        messages = query.messages.count()
        try:
            MOVES[move](user=users[role], query=query, text="A message.")
        except PermissionDenied:
            outcomes[role] = "refused"
        except ValidationError:
            outcomes[role] = "not from this state"
        else:
            outcomes[role] = "made"
            assert query.messages.count() == messages + 1
            continue
        assert Query.objects.get(pk=query.pk).state == state and query.messages.count() == messages
    allowed = ALLOWED[state][move]
    # No role may make a move the state does not allow; otherwise the others are refused.
    expected = {role: "made" if role in allowed else "refused" if allowed else "not from this state"
                for role in ROLES}
    assert outcomes == expected


def test_a_monitor_or_a_coordinator_raises_a_query_and_nobody_else(case, nurse, other_nurse, pi, monitor, coordinator):
    pm = pm_of(case)
    for user in (nurse, other_nurse, pi):
        with pytest.raises(PermissionDenied):
            raise_on(user, pm)
    assert raise_on(monitor, pm).raised_by == monitor
    assert raise_on(coordinator, pm).raised_by == coordinator
    assert Query.objects.filter(origin="manual").count() == 2


def test_a_query_asks_about_a_field_the_record_has_and_says_something(case, monitor):
    with pytest.raises(ValidationError, match="no field"):
        raise_on(monitor, pm_of(case), field="version")
    with pytest.raises(ValidationError, match="Write a message"):
        raise_on(monitor, pm_of(case), text="  ")


def test_each_step_keeps_who_when_from_where_and_the_value(case, nurse, monitor):
    query = raise_on(monitor, pm_of(case))
    queries.query_answer(user=nurse, query=query, text="Checked: 15 mm.", ip_address="10.9.9.9")
    steps = list(query.messages.values_list("action", "username", "ip_address", "value"))
    assert steps == [("raise", "monitor", "10.1.2.3", "15"), ("answer", "nurse", "10.9.9.9", "")]
    assert all(message.created_at <= timezone.now() for message in query.messages.all())


def test_an_answer_may_name_the_change_that_answered_it_but_only_a_change_of_the_field(case, nurse, monitor):
    query = raise_on(monitor, pm_of(case))
    pm = save(nurse, pm_of(case), side="left")
    with pytest.raises(ValidationError, match="not a change of the queried field"):
        queries.query_answer(user=nurse, query=query, text="", record_version=pm.version)
    pm = save(nurse, pm, max_lesion_diameter_mm=18)
    queries.query_answer(user=nurse, query=query, text="", record_version=pm.version)
    answer = query.messages.last()
    assert (answer.record_version, answer.value) == (pm.version, "18")


# --- answering by correcting the field ---------------------------------------------------------

def edit_url(query):
    return reverse("record_edit", args=[query.patient_id, "metastasectomies", query.record_pk]) + f"?query={query.pk}"


def form_values(response, **changes):
    form = response.context["form"]
    data = {}
    for field in form:
        value = field.value()
        data[field.html_name] = "" if value is None else field.field.widget.format_value(value) \
            if not field.field.widget.is_hidden else value
        data[field.html_name] = "" if data[field.html_name] is None else data[field.html_name]
    return {**data, **changes}


def test_correcting_the_field_on_the_form_answers_the_query_and_names_the_change(client, case, nurse, monitor):
    query = raise_on(monitor, pm_of(case))
    client.force_login(nurse)
    page = client.get(edit_url(query))
    assert f"Answering query {query.pk}" in page.content.decode()
    response = client.post(edit_url(query), form_values(page, max_lesion_diameter_mm="18"), REMOTE_ADDR="10.0.0.7")
    assert response.status_code == 302 and response["Location"] == reverse("query_detail", args=[query.pk])
    pm = pm_of(case)
    answer = Query.objects.get(pk=query.pk).messages.last()
    assert (answer.action, answer.username, answer.record_version, answer.value, answer.ip_address) == (
        "answer", "nurse", pm.version, "18", "10.0.0.7")
    change = pm.history.get(version=answer.record_version)
    assert change.max_lesion_diameter_mm == 18 and change.history_user == nurse
    assert Query.objects.get(pk=query.pk).state == "answered"


def test_a_save_that_leaves_the_queried_field_as_it_was_answers_nothing_and_saves_nothing(client, case, nurse,
                                                                                            monitor):
    query = raise_on(monitor, pm_of(case))
    client.force_login(nurse)
    page = client.get(edit_url(query))
    response = client.post(edit_url(query), form_values(page, side="left"))
    assert response.status_code == 200 and "The query asks about this field" in response.content.decode()
    assert pm_of(case).side == "right" and Query.objects.get(pk=query.pk).state == "open"


def test_a_complete_record_answered_by_correction_asks_for_the_reason(client, case, nurse, monitor):
    pm = services.record_status_set(user=nurse, record=pm_of(case), status="complete")
    query = raise_on(monitor, pm)
    client.force_login(nurse)
    page = client.get(edit_url(query))
    assert page.context["form"]["reason"].value() == f"Answer to query {query.pk}"
    data = form_values(page, max_lesion_diameter_mm="18", reason="")
    assert "give a reason" in client.post(edit_url(query), data).content.decode()
    client.post(edit_url(query), {**data, "reason": f"Answer to query {query.pk}"})
    assert pm_of(case).history.first().history_change_reason == f"web: Answer to query {query.pk}"
    assert Query.objects.get(pk=query.pk).state == "answered"


def test_a_query_about_another_record_cannot_be_answered_on_this_form(client, case, nurse, monitor):
    query = raise_on(monitor, PrimaryTumour.objects.get(patient=case), field="grade")
    client.force_login(nurse)
    url = reverse("record_edit", args=[case.pk, "metastasectomies", pm_of(case).pk]) + f"?query={query.pk}"
    assert client.get(url).status_code == 404


def test_the_thread_offers_the_nurse_the_correction_and_the_monitor_no_such_link(client, case, nurse, monitor):
    query = raise_on(monitor, pm_of(case))
    client.force_login(nurse)
    assert edit_url(query) in client.get(reverse("query_detail", args=[query.pk])).content.decode()
    client.force_login(monitor)
    assert "?query=" not in client.get(reverse("query_detail", args=[query.pk])).content.decode()


# --- the pages -----------------------------------------------------------------------------------

def test_the_patient_page_shows_each_records_queries_with_a_link_to_the_thread(client, case, nurse, monitor):
    query = raise_on(monitor, pm_of(case), text="Is 15 mm the pathology value?")
    client.force_login(nurse)
    html = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    pm_row = html.split('id="metastasectomies"')[1].split("</section>")[0]
    assert reverse("query_detail", args=[query.pk]) in pm_row and "Is 15 mm the pathology value?" in pm_row
    assert "Largest lesion" in pm_row and "Raise a query" not in html  # a nurse raises none
    patient_panel = html.split('id="patient"')[1].split("</section>")[0]
    assert "no news of the patient" in patient_panel  # the soft check on the patient
    client.force_login(monitor)
    assert "Raise a query" in client.get(reverse("patient_detail", args=[case.pk])).content.decode()


def test_a_monitor_raises_a_query_on_the_form_and_lands_on_its_thread(client, case, monitor):
    url = reverse("query_new", args=[case.pk, "metastasectomies", pm_of(case).pk])
    client.force_login(monitor)
    assert client.get(url + "?field=margin").context["form"]["field"].value() == "margin"
    response = client.post(url, {"field": "margin", "text": "R0 per the report?"}, REMOTE_ADDR="10.2.2.2")
    query = Query.objects.get(origin="manual")
    assert response["Location"] == reverse("query_detail", args=[query.pk])
    assert (query.field, query.messages.get().ip_address) == ("margin", "10.2.2.2")


def test_a_query_on_the_patient_itself_is_raised_by_its_pseudonym(client, case, monitor):
    client.force_login(monitor)
    url = reverse("query_new", args=[case.pk, "patient", case.pk])
    assert client.post(url, {"field": "ecog", "text": "ECOG 0 at 80?"}).status_code == 302
    assert Query.objects.get(origin="manual").table == "patients"
    assert client.get(reverse("query_new", args=[case.pk, "patient", "MUC-OTHER1"])).status_code == 404


def test_the_thread_page_makes_the_moves_and_says_why_a_move_needs_a_message(client, case, nurse, monitor, pi):
    query = raise_on(monitor, pm_of(case))
    url = reverse("query_detail", args=[query.pk])
    client.force_login(pi)
    assert 'name="action"' not in client.get(url).content.decode()
    assert client.post(url, {"action": "answer", "text": "x"}).status_code == 403
    client.force_login(nurse)
    assert client.post(url, {"action": "answer", "text": ""}).status_code == 400
    assert client.post(url, {"action": "answer", "text": "It is right."}).status_code == 302
    client.force_login(monitor)
    client.post(url, {"action": "reopen", "text": "The report says 18 mm."})
    html = client.get(url).content.decode()
    assert "It is right." in html and "The report says 18 mm." in html and "reopened" in html
    assert SecurityEvent.objects.filter(event="read", what="query_detail", patient_id=case.pk).exists()


def listed(client, user, **params):
    client.force_login(user)
    response = client.get(reverse("query_list"), params)
    assert response.status_code == 200
    return {row["query"].pk for row in response.context["rows"]}


@pytest.fixture
def four_queries(case, nurse, monitor):
    """A MUC query in each state, and an open one at BER; the soft checks' own are closed."""
    Query.objects.filter(origin="soft_check").update(state="closed")
    by_state = {state: query_in(state, case, nurse, monitor) for state in ("open", "answered", "reopened", "closed")}
    berlin = f.patient("BER")
    f.metastasectomy(berlin).save()
    by_state["berlin"] = queries.query_raise(user=f.user("coord2", memberships=[("BER", "coordinator")]),
                                             record=pm_of(berlin), field="side", text="Side?")
    return by_state


def test_the_nurse_s_worklist_holds_her_centre_s_open_and_reopened_queries(client, nurse, four_queries):
    assert listed(client, nurse) == {four_queries["open"].pk, four_queries["reopened"].pk}
    assert four_queries["berlin"].pk not in listed(client, nurse, state="all")


def test_the_monitor_s_worklist_holds_his_centre_s_answered_queries(client, monitor, four_queries):
    assert listed(client, monitor) == {four_queries["answered"].pk}


def test_a_coordinator_sees_every_query_and_filters_by_state_and_centre(client, coordinator, four_queries):
    everything = {query.pk for query in four_queries.values()}
    assert listed(client, coordinator) >= everything
    assert listed(client, coordinator, state="open", centre="BER") == {four_queries["berlin"].pk}
    assert listed(client, coordinator, state="closed", centre="MUC") >= {four_queries["closed"].pk}


def test_another_centre_s_nurse_never_sees_these_queries(client, other_nurse, four_queries, case):
    assert listed(client, other_nurse, state="all") == {four_queries["berlin"].pk}  # her own centre's
    client.force_login(other_nurse)
    assert client.get(reverse("query_list"), {"centre": "MUC"}).status_code == 404
    assert client.get(reverse("query_detail", args=[four_queries["open"].pk])).status_code == 404
    assert case.pk not in client.get(reverse("query_list"), {"state": "all"}).content.decode().split("</header>")[1]


def test_the_list_shows_per_centre_the_open_queries_and_the_age_of_the_oldest(client, coordinator, four_queries):
    Query.objects.filter(pk=four_queries["open"].pk).update(created_at=timezone.now() - datetime.timedelta(days=40))
    client.force_login(coordinator)
    centres = client.get(reverse("query_list")).context["centres"]
    assert (centres["MUC"]["open"], centres["MUC"]["oldest_days"], centres["MUC"]["answered"]) == (2, 40, 1)
    assert centres["BER"]["open"] == 1


def test_the_open_queries_median_age_per_centre_for_the_study_progress(case, monitor):
    now = timezone.now()
    for days in (2, 10, 30):
        query = raise_on(monitor, pm_of(case))
        Query.objects.filter(pk=query.pk).update(created_at=now - datetime.timedelta(days=days, hours=1))
    assert selectors.query_ages_by_centre(Query.objects.filter(origin="manual"), now=now) == {
        "MUC": {"open": 3, "answered": 0, "oldest_days": 30, "median_days": 10}}


def test_the_audit_trail_lists_every_step_of_a_query(case, nurse, monitor):
    from registry.security.trail import TrailFilter, trail_rows

    query = raise_on(monitor, pm_of(case))
    queries.query_answer(user=nurse, query=query, text="Checked.", ip_address="10.3.3.3")
    rows = [row for row in trail_rows(TrailFilter(patient_id=case.pk)) if row["kind"] == "query"
            and row["what"] == f"query {query.pk}"]
    assert [(row["event"], row["user"], row["ip_address"]) for row in rows] == [
        ("raise", "monitor", "10.1.2.3"), ("answer", "nurse", "10.3.3.3")]


def test_query_messages_are_sealed_into_the_audit_chain(case, monitor, django_capture_on_commit_callbacks):
    from registry.models import AuditSeal

    with django_capture_on_commit_callbacks(execute=True):
        raise_on(monitor, pm_of(case))
    assert AuditSeal.objects.filter(table=QueryMessage._meta.db_table).exists()


def test_erasing_the_patient_erases_its_queries_and_their_messages(case, monitor, coordinator):
    raise_on(monitor, pm_of(case))
    tombstone = services.patient_erase(user=coordinator, patient_id=case.pk, reference="request 1")
    assert not Query.objects.exists() and not QueryMessage.objects.exists()
    assert tombstone.counts["registry_query"] == 2 and tombstone.counts["registry_querymessage"] == 2
