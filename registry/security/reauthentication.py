"""The signer's identity at a signature, as the pages and the API ask for it.

registry.services.signatures checks the password (and the authenticator's code) itself, whoever
calls it. Around that call, this adds what belongs to the security of sign-in:
- while the user name (from this address) is locked out of signing in, a signature is refused
  before any password is looked at;
- every refusal is recorded as a security event (an alert in the security log);
- a wrong password counts as a failed sign-in for django-axes, so guessing a password on a signature
  page locks the account exactly as guessing on the sign-in page does (registry.security.lockout).
  Wrong codes are counted by the authenticator's own throttle, as at sign-in.
"""
from contextlib import contextmanager

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext as _

from registry.security import audit
from registry.services.signatures import LOCKED, PASSWORD, SignatureRefused

REASONS = {PASSWORD: "wrong password", "code": "wrong code", "code_required": "no code", LOCKED: "locked out"}


@contextmanager
def identity_checked(request, *, user, patient_id="", centre=""):
    """Wraps a call of services.case_sign or centre_sign (see the module's docstring)."""
    http = getattr(request, "_request", request)  # the Django request behind a REST framework one
    credentials = {"username": user.get_username()}
    scope = {"patient_id": patient_id, "centres": centre or (audit.centre_of(patient_id) if patient_id else "")}
    if AxesProxyHandler.is_locked(http, credentials):
        audit.log_signature_refused(request, reason=REASONS[LOCKED], **scope)
        raise SignatureRefused(_("Too many failed attempts: signing, like signing in, is locked for a while. "
                                 "Ask the registry administrator if it is urgent."), LOCKED)
    try:
        yield
    except SignatureRefused as refusal:
        audit.log_signature_refused(request, reason=REASONS.get(refusal.code, refusal.code), **scope)
        if refusal.code == PASSWORD:
            user_login_failed.send(sender=__name__, credentials=credentials, request=http)
        raise
