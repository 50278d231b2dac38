"""API tokens: issued by a user for themselves in the web app, shown once, stored only as a hash.

Two kinds, because their formats are fixed by their clients:
- `api`     for the REST API (`Authorization: Token <key>`), e.g. ``pmr_3q0…`` (44 characters);
- `redcap`  for the REDCap-compatible endpoint, which REDCap clients (PyCap, REDCapR) only accept as
            exactly 32 hexadecimal characters, sent in the POST body.
A token acts as its user: it reads and writes exactly what the user may (registry.access), or
only reads when it is read-only. It expires (settings.API_TOKEN_DAYS after its creation), and every
token of a user is revoked when their password changes.
"""
import datetime
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry.models import SecurityEvent

API = "api"
REDCAP = "redcap"
KINDS = [(API, _("REST API")), (REDCAP, _("REDCap API"))]

# last_used_at is refreshed at most this often, so a busy client does not write on every request.
LAST_USED_RESOLUTION_SECONDS = 60


def token_hash(key):
    """sha256 of the token: tokens carry 128+ random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind):
    if kind == REDCAP:
        return secrets.token_hex(16).upper()  # REDCap's own format: 32 upper-case hex characters
    return "pmr_" + secrets.token_urlsafe(30)


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now()))


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    kind = models.CharField(_("kind"), max_length=8, choices=KINDS, default=API)
    name = models.CharField(_("name"), max_length=100, help_text=_("What the token is for, e.g. 'HIS export job'."))
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("starts with"), max_length=8, editable=False,
                              help_text=_("The first characters, to recognise the token."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    read_only = models.BooleanField(_("read only"), default=False,
                                    help_text=_("A read-only token may read but never change or delete."))

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        constraints = [models.CheckConstraint(condition=models.Q(kind__in=[API, REDCAP]), name="api_token_kind")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, *, user, kind, name, read_only=False):
        """Create a token; returns (token, key). The key exists only in this return value."""
        key = new_key(kind)
        expires = timezone.now() + datetime.timedelta(days=getattr(settings, "API_TOKEN_DAYS", 90))
        token = cls.objects.create(user=user, kind=kind, name=name, key_hash=token_hash(key), prefix=key[:8],
                                   read_only=read_only, expires_at=expires)
        return token, key

    @classmethod
    def authenticate(cls, key, *, kind):
        """The active token with this key and kind, with its user; None if there is none."""
        if not key:
            return None
        token = cls.objects.active().select_related("user").filter(kind=kind, key_hash=token_hash(key)).first()
        if token is None or not token.user.is_active:
            return None
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token

    def revoke(self, *, by=None, ip_address=None, why=""):
        """Revoke the token (logged as a security event of `by`, default its user)."""
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
            log_token_event(SecurityEvent.TOKEN_REVOKED, self, by=by or self.user, ip_address=ip_address, why=why)


def log_token_event(event, token, *, by, ip_address=None, why=""):
    detail = f"{token.get_kind_display()} “{token.name}” ({token.prefix}…) of {token.user.get_username()}"
    SecurityEvent.objects.create(user=by, username=by.get_username(), event=event, ip_address=ip_address,
                                 detail=(detail + (f": {why}" if why else ""))[:200])


def revoke_tokens_on_password_change(sender, instance, **kwargs):
    """pre_save of the user model: a new password revokes every token the user holds."""
    fields = kwargs.get("update_fields")
    if not instance.pk or (fields is not None and "password" not in fields):  # e.g. last_login at sign-in
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        for token in ApiToken.objects.active().filter(user_id=instance.pk):
            token.revoke(why="password changed")
