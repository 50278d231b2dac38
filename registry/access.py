"""Who may read and write what: the one place that answers it.

Every view, API endpoint, export and analysis query gets its querysets from here.

Roles (registry.Membership.role):
- nurse        reads and writes the patients of the centres they belong to;
- coordinator  reads and writes every centre, imports and exports the pooled dataset;
- pi           reads aggregate results of every centre and the records of their own centres,
               and writes nothing;
- monitor      reads the records of the centres assigned to them and verifies them (a record's
               status, registry.services.status), but never changes clinical data.
Superusers count as coordinators. Inactive or anonymous users may do nothing.
"""
from django.conf import settings
from django.core.exceptions import PermissionDenied

from registry.models import Centre, DeletedRecord, Patient, Query

ALL = "__all__"


class _System:
    """The actor for management commands that write without a person (generator, demo):
    may write every centre, recorded as no user in the audit trail."""

    is_authenticated = True
    is_active = True
    is_superuser = True
    pk = None
    _registry_roles = {}


SYSTEM = _System()


def audit_user(user):
    """The user to record in the audit trail (None for SYSTEM)."""
    return None if user is SYSTEM else user


def _roles(user):
    """{centre code: role} for an active user, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return {}
    if not hasattr(user, "_registry_roles"):
        user._registry_roles = dict(user.memberships.values_list("centre_id", "role"))
    return user._registry_roles


def is_coordinator(user):
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or "coordinator" in _roles(user).values()


def role_names(user):
    """The roles the user holds in any centre; a superuser counts as a coordinator."""
    names = set(_roles(user).values())
    return names | {"coordinator"} if is_coordinator(user) else names


def is_pi(user):
    return "pi" in _roles(user).values()


# The data-management cycle: {from: {to: roles that may make the move}} (a coordinator makes any).
STATUS_MOVES = {
    "in_progress": {"complete": {"nurse"}},
    "complete": {"in_progress": {"nurse"}, "verified": {"monitor"}},
    "verified": {"complete": {"monitor"}, "locked": set()},
    "locked": {"verified": set()},  # unlocking, with a reason
}


def status_moves(user, centre_code, current):
    """The statuses the user may move a record of this centre to from status `current`."""
    moves = STATUS_MOVES.get(current, {})
    if is_coordinator(user):
        return set(moves)
    role = _roles(user).get(centre_code)
    return {status for status, roles in moves.items() if role in roles}


# Data clarification requests (registry.services.queries): who raises a query on a record of a
# centre, and {state: {move: roles}} for the moves after it (a coordinator makes any). A monitor
# asks and decides; the centre's nurse answers, with a message or by correcting the field; a PI reads.
QUERY_RAISERS = {"monitor"}
QUERY_MOVES = {
    "open": {"answer": {"nurse"}, "close": {"monitor"}},
    "answered": {"close": {"monitor"}, "reopen": {"monitor"}},
    "reopened": {"answer": {"nurse"}, "close": {"monitor"}},
    "closed": {"reopen": {"monitor"}},
}


def query_moves(user, centre_code, state):
    """The moves (answer, close, reopen) the user may make on a query of this centre in `state`."""
    moves = QUERY_MOVES.get(state, {})
    if is_coordinator(user):
        return set(moves)
    role = _roles(user).get(centre_code)
    return {move for move, roles in moves.items() if role in roles}


def can_raise_query(user, centre_code):
    return is_coordinator(user) or _roles(user).get(centre_code) in QUERY_RAISERS


# The queries waiting for each role: the centre's nurse answers open and reopened ones, the monitor
# decides on answered ones; a PI reads them all.
QUERY_WORKLISTS = {"nurse": {"open", "reopened"}, "monitor": {"answered"},
                   "pi": {"open", "answered", "reopened", "closed"}}


def query_worklist_states(user):
    """{centre code (or ALL): the states of the queries on the user's worklist there}."""
    if is_coordinator(user):
        return {ALL: set(QUERY_MOVES)}
    return {code: QUERY_WORKLISTS.get(role, set()) for code, role in _roles(user).items()}


def queries_readable(user):
    """Queries of the centres whose records the user may read."""
    return _filter(Query.objects.all(), readable_centre_codes(user), "centre")


def readable_centre_codes(user):
    """Centres whose patient records the user may read: ALL or a set of codes."""
    return ALL if is_coordinator(user) else set(_roles(user))


def writable_centre_codes(user):
    if is_coordinator(user):
        return ALL
    return {code for code, role in _roles(user).items() if role == "nurse"}


def analysis_centre_codes(user):
    """Centres that may enter the aggregate (survival) results the user sees."""
    if is_coordinator(user) or is_pi(user):
        return ALL
    return set(_roles(user))


def _filter(queryset, codes, lookup):
    return queryset if codes == ALL else queryset.filter(**{f"{lookup}__in": sorted(codes)})


def centres_readable(user):
    return _filter(Centre.objects.all(), readable_centre_codes(user), "code")


def patients_readable(user):
    return _filter(Patient.objects.all(), readable_centre_codes(user), "centre")


def patients_writable(user):
    return _filter(Patient.objects.all(), writable_centre_codes(user), "centre")


def may_analyse_every_centre(user):
    """The explicit analyst permission (registry.analyse_every_centre), which a coordinator gives in
    the admin: row-level analysis data of every centre, without reading or writing its records.
    (Asked only for row-level data: the permission lookup costs two queries.)"""
    return user is not SYSTEM and user.is_active and user.has_perm("registry.analyse_every_centre")


def centres_for_analysis(user, *, row_level=False):
    """The centres whose patients may enter the user's results (ALL or a set of codes). Aggregates
    (curves, models, tables) pool every centre for a PI; row-level data (one row per patient, e.g.
    the analysis frame) are the centres whose records the user may read, as for every other
    patient-level output, or every centre for a user with the analyst permission. The same for the
    live registry and a data freeze."""
    if row_level and may_analyse_every_centre(user):
        return ALL
    return readable_centre_codes(user) if row_level else analysis_centre_codes(user)


def patients_for_analysis(user, *, row_level=False):
    """The patients whose data may enter the user's results (centres_for_analysis)."""
    return _filter(Patient.objects.all(), centres_for_analysis(user, row_level=row_level), "centre")


def records_readable(user, model):
    """Rows of a per-patient model (PrimaryTumour, Metastasectomy, ...) the user may read."""
    return _filter(model.objects.all(), readable_centre_codes(user), "patient__centre")


def can_read_centre(user, centre_code):
    codes = readable_centre_codes(user)
    return codes == ALL or centre_code in codes


def deleted_records_readable(user):
    """Tombstones of deleted records (registry.models.DeletedRecord) whose centre the user may read:
    a deleted record stays as readable, to the same people, as it was."""
    return _filter(DeletedRecord.objects.all(), readable_centre_codes(user), "centre")


def can_restore(user):
    """Putting a deleted record back is a coordinator's decision."""
    return is_coordinator(user)


def can_write_centre(user, centre_code):
    codes = writable_centre_codes(user)
    return codes == ALL or centre_code in codes


def require_writable(user, centre_code):
    """Raise PermissionDenied unless the user may write patients of this centre."""
    if not can_write_centre(user, centre_code):
        raise PermissionDenied(f"You may not change patients of centre {centre_code}.")


def can_import(user):
    return bool(writable_centre_codes(user))


def can_export_pooled(user):
    return is_coordinator(user)


def export_centre_codes(user):
    """The centres whose dataset the user may export: ALL (and the pooled dataset) for a
    coordinator; a PI's own centres when settings.EXPORT_ALLOW_PI is on (an export is row-level
    data, which never crosses a PI's centres); none for anyone else."""
    if is_coordinator(user):
        return ALL
    if getattr(settings, "EXPORT_ALLOW_PI", False):
        return {code for code, role in _roles(user).items() if role == "pi"}
    return set()


def can_export(user, centre=None):
    """May the user export anything (centre None), or this centre's dataset (a code), or the pooled
    dataset (centre ALL)?"""
    codes = export_centre_codes(user)
    if centre is None:
        return bool(codes)
    return codes == ALL or (centre != ALL and centre in codes)


# Signing a case as accurate and complete is the investigator's responsibility for the data of the
# centre (ICH GCP E6, 4.9): a principal investigator of the patient's centre signs. A coordinator
# manages the registry but is no investigator of the centre, and does not sign.
def signing_centre_codes(user):
    """The centres whose cases the user may sign."""
    return {code for code, role in _roles(user).items() if role == "pi"}


def can_sign(user, centre_code):
    return centre_code in signing_centre_codes(user)


def can_verify_fields(user, centre_code):
    """Source data verification, field by field, is the verifier's work: whoever may move a
    complete record of the centre to verified (a monitor of the centre, a coordinator)."""
    return "verified" in status_moves(user, centre_code, "complete")
