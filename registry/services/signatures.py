"""Electronic signatures: a principal investigator signs a patient's case, or every complete case of
a centre, as accurate and complete.

- Who: a PI of the patient's centre (registry.access.can_sign).
- Identity, at every signing: the signer's password again, and the code of their authenticator
  when they have one. It is checked before the signing transaction, so that django-otp's count of
  wrong codes survives the refusal; the pages and the API record each refusal as a security event
  and count a wrong password toward the sign-in lockout (registry.security.reauthentication).
- What: the meaning of the signature (the statement the signer was shown, stored as shown), the
  signer, the time, the client address and the SHA-256 of the canonical case
  (registry.cases.case_digest: every record's values).
- Only a case whose every record is complete, verified or locked is signed.

Validity is computed, not stored: a signature holds while the case's digest equals the one signed.
Every change of the case's data (an edit, a new or deleted record; through the forms, the API, the
import, the admin, or past the application) changes the digest (verifying or locking it does not), so no writer has to
remember to invalidate anything, and a signature row is written once and never updated (an
append-only, sealed audit table). Who changed the case first after the signature is read from the
audit trail.
"""
from dataclasses import dataclass, field

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry import access, rules
from registry.cases import NOT_SIGNED, assemble, case_digest
from registry.models import CLINICAL_MODELS, Patient, Signature
from registry.selectors import case_load, stored_records
from registry.services.status import IN_PROGRESS

# Why a signer's identity was not confirmed (SignatureRefused.code).
PASSWORD, CODE, CODE_REQUIRED, LOCKED = "password", "code", "code_required", "locked"

MEANING = gettext_lazy(
    "I confirm that the data of this case are accurate and complete as recorded from the source documents, "
    "and I take responsibility for them as principal investigator of centre %(centre)s.")


class SignatureRefused(ValidationError):
    """The signer's identity was not confirmed; `code` says why (PASSWORD, CODE, CODE_REQUIRED, LOCKED)."""

    def __init__(self, message, code):
        where = {PASSWORD: "password", CODE: "otp", CODE_REQUIRED: "otp"}.get(code, NON_FIELD_ERRORS)
        super().__init__({where: [message]})
        self.code = code


def meaning_text(centre_code):
    """The statement a signer of this centre's cases is shown, in the active language."""
    return str(MEANING) % {"centre": centre_code}


def needs_code(user):
    """True when the user has an authenticator: a signature then takes its code too."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def identity_confirm(*, user, password, otp=None):
    """Raise SignatureRefused unless `password` is the user's and, when the user has an
    authenticator, `otp` is its current code (a code is accepted once; wrong codes are throttled)."""
    if not password or not user.check_password(password):
        raise SignatureRefused(_("The password is not correct."), PASSWORD)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        return
    code = (otp or "").replace(" ", "")
    if not code:
        raise SignatureRefused(_("Enter the 6-digit code of your authenticator app as well."), CODE_REQUIRED)
    allowed, _details = device.verify_is_allowed()
    if not allowed:
        raise SignatureRefused(_("Too many wrong codes. Wait a minute, then try again."), CODE)
    if not device.verify_token(code):
        raise SignatureRefused(_("That code is not valid. Codes change every 30 seconds."), CODE)


def require_signer(user, centre_code):
    if not access.can_sign(user, centre_code):
        raise PermissionDenied(_("Only a principal investigator of centre %(centre)s may sign its cases.")
                               % {"centre": centre_code})


def unfinished(case):
    """The records of the case still in progress (a case is signed once all are complete or further)."""
    return [record for record in case.records() if record.status == IN_PROGRESS]


def _signature(user, case, *, meaning, signed_at, ip_address, source):
    return Signature.objects.create(
        patient_id=case.patient.pk, centre=case.patient.centre_id, signer=user, username=user.get_username(),
        signer_name=user.get_full_name(), signed_at=signed_at, meaning=meaning or meaning_text(case.patient.centre_id),
        data_hash=case_digest(case), records=len(list(case.records())), ip_address=ip_address, source=source)


def case_sign(*, user, patient, password, otp=None, meaning=None, ip_address=None, source=""):
    """Sign one patient's case as accurate and complete; returns the Signature.

    Raises PermissionDenied unless the user is a PI of the patient's centre, SignatureRefused when
    the password (or the authenticator's code) is wrong, and ValidationError while a record of the
    case is still in progress. `meaning` is the statement shown (default: MEANING)."""
    require_signer(user, patient.centre_id)
    identity_confirm(user=user, password=password, otp=otp)
    return _case_sign(user=user, patient_id=patient.pk, meaning=meaning, ip_address=ip_address, source=source)


@transaction.atomic
def _case_sign(*, user, patient_id, meaning, ip_address, source):
    # The patient's row first, as every write does: the case cannot change while it is hashed.
    patient = Patient.objects.select_for_update().filter(pk=patient_id).first()
    if patient is None:
        raise Patient.DoesNotExist(f"Patient {patient_id} is no longer in the registry.")
    case = case_load(patient)
    pending = unfinished(case)
    if pending:
        raise ValidationError(_("The case cannot be signed yet: %(records)s still in progress.") % {
            "records": ", ".join(rules.describe(record) for record in pending)})
    return _signature(user, case, meaning=meaning, signed_at=timezone.now(), ip_address=ip_address, source=source)


@dataclass
class CentreSigning:
    """What signing a centre did: the signatures written and the cases left, by why."""

    signed: list = field(default_factory=list)          # [Signature]
    already_signed: list = field(default_factory=list)  # [patient_id]: a valid signature holds
    not_complete: list = field(default_factory=list)    # [(patient_id, [record still in progress])]


def centre_cases(centre_code, *, lock=False):
    """Every case of the centre as stored, in pseudonym order (five queries; with `lock` the
    patients' rows stay locked until the commit, as every write locks them)."""
    ids = list(Patient.objects.filter(centre_id=centre_code).order_by("pk").values_list("pk", flat=True))
    patients, tumours, children = stored_records(ids, lock=lock)
    cases = []
    for pid in ids:
        if pid not in patients:
            continue  # deleted meanwhile
        records = [tumours[pid]] if pid in tumours else []
        for by_patient in children.values():
            records.extend(by_patient.get(pid, []))
        cases.append(assemble(patients[pid], records))
    return cases


def centre_plan(centre_code, cases=None):
    """What signing the centre now would do (nothing is written): a CentreSigning whose `signed`
    lists the cases to be signed."""
    cases = centre_cases(centre_code) if cases is None else cases
    latest = latest_signatures(centre_code)
    plan = CentreSigning()
    for case in cases:
        pending = unfinished(case)
        signature = latest.get(case.patient.pk)
        if pending:
            plan.not_complete.append((case.patient.pk, pending))
        elif signature is not None and signature.data_hash == case_digest(case):
            plan.already_signed.append(case.patient.pk)
        else:
            plan.signed.append(case)
    return plan


def centre_sign(*, user, centre, password, otp=None, meaning=None, ip_address=None, source=""):
    """Sign every complete case of the centre that no valid signature covers yet, with one
    confirmation of the signer's identity; returns a CentreSigning (the cases still in progress
    and those already signed are listed, not signed). Raises as case_sign does, and
    ValidationError when no case is left to sign."""
    code = getattr(centre, "code", centre)
    require_signer(user, code)
    identity_confirm(user=user, password=password, otp=otp)
    return _centre_sign(user=user, centre_code=code, meaning=meaning, ip_address=ip_address, source=source)


@transaction.atomic
def _centre_sign(*, user, centre_code, meaning, ip_address, source):
    plan = centre_plan(centre_code, centre_cases(centre_code, lock=True))
    if not plan.signed:
        raise ValidationError(_("No case of centre %(centre)s is waiting for a signature.") % {"centre": centre_code})
    now = timezone.now()
    plan.signed = [_signature(user, case, meaning=meaning, signed_at=now, ip_address=ip_address, source=source)
                   for case in plan.signed]
    return plan


# --- reading: is a signature still valid, and what changed the case ---------------------------

def latest_signatures(centre_code):
    """{patient_id: its newest signature} for the patients of a centre (one query)."""
    latest = {}
    for signature in Signature.objects.filter(centre=centre_code).order_by("patient_id", "-signed_at", "-id"):
        latest.setdefault(signature.patient_id, signature)
    return latest


@dataclass
class SignatureState:
    """One signature of a case: whether it still holds and, if not, the first change after it
    (None when the audit trail shows none: the data were changed past the application)."""

    signature: Signature
    valid: bool
    change: dict = None  # {"at", "user", "record", "action"}
    explained: bool = False  # the audit trail was searched for the change


def changes_signed_data(row):
    """Whether a history row added, deleted or changed a signed value (not only the status)."""
    previous = row.prev_record if row.history_type == "~" else None  # a query: read once
    if previous is None:
        return True
    return any(change.field not in NOT_SIGNED for change in row.diff_against(previous).changes)


def first_change_after(patient_id, moment):
    """The first audited change of the patient's case after `moment` ({"at", "user", "record",
    "action"}), or None (one query per table)."""
    changes = []
    for model in CLINICAL_MODELS:
        rows = (model.history.filter(patient_id=patient_id, history_date__gt=moment).select_related("history_user")
                .order_by("history_date", "history_id"))
        row = next((row for row in rows if changes_signed_data(row)), None)
        if row is not None:
            changes.append({
                "at": row.history_date,
                "user": row.history_user.get_username() if row.history_user else _("system"),
                "record": rules.describe(row.instance),
                "action": {"+": _("added"), "~": _("changed"), "-": _("deleted")}[row.history_type],
            })
    return min(changes, key=lambda change: change["at"], default=None)


def signature_states(case, *, explain=None):
    """Every signature of the case, newest first, each with its validity against the case as it is
    stored now (`case`: registry.selectors.case_load; one query) and, when it no longer holds, the
    first change after it: for the `explain` newest of them (None: all), one query per table each."""
    digest = case_digest(case)
    states = [SignatureState(signature, signature.data_hash == digest)
              for signature in Signature.objects.filter(patient_id=case.patient.pk)]
    for state in states[:explain]:
        if not state.valid:
            state.change = first_change_after(case.patient.pk, state.signature.signed_at)
            state.explained = True
    return states
