"""Two-factor sign-in with an authenticator app (TOTP, django-otp).

After the password, a user who has an authenticator must enter its 6-digit code before any other
page opens; a user whose role is in settings.TWO_FACTOR_REQUIRED_ROLES and has none is sent to set
one up first. The middleware enforces this for every page, whichever sign-in form was used (the
admin's too). API tokens are not affected: only a verified session can create one.
"""
import io
from base64 import b32encode
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from axes.helpers import get_client_ip_address
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry import access
from registry.models import SecurityEvent

# Pages an unverified user may still open (by URL name).
OPEN_PAGES = {"login", "logout", "set_language", "two_factor_verify", "two_factor_setup"}


def required_for(user):
    """True when the user's role obliges them to sign in with a second factor."""
    required = settings.TWO_FACTOR_REQUIRED_ROLES
    if not required or not user.is_authenticated:
        return False
    return bool(access.role_names(user) & required)


def confirmed_device(user):
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def pending_step(user):
    """The page a signed-in user must pass before any other: the code, set-up, or None.
    Kept on the user object for the request (the middleware and the navigation both ask)."""
    if not user.is_authenticated or user.is_verified():
        return None
    if not hasattr(user, "_two_factor_step"):
        user._two_factor_step = ("two_factor_verify" if confirmed_device(user)
                                 else "two_factor_setup" if required_for(user) else None)
    return user._two_factor_step


class TwoFactorMiddleware:
    """Sends a signed-in but unverified user to the code page (or to set-up, if required)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.resolver_match.url_name in OPEN_PAGES:
            return None
        step = pending_step(request.user)
        return _redirect_with_next(step, request.get_full_path()) if step else None


def _redirect_with_next(url_name, next_url):
    return HttpResponseRedirect(reverse(url_name) + "?" + urlencode({"next": next_url}))


def _next_url(request):
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return url
    return reverse(settings.LOGIN_REDIRECT_URL)


def _record(request, event):
    SecurityEvent.objects.create(user=request.user, username=request.user.get_username(), event=event,
                                 ip_address=get_client_ip_address(request))  # as axes logs sign-ins


class CodeForm(forms.Form):
    code = forms.CharField(label=gettext_lazy("6-digit code from your authenticator app"), max_length=8,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                         "autofocus": True, "pattern": "[0-9 ]*"}))

    def __init__(self, *args, device=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_code(self):
        code = self.cleaned_data["code"].replace(" ", "")
        allowed, details = self.device.verify_is_allowed()
        if not allowed:
            raise forms.ValidationError(_("Too many wrong codes. Wait a minute, then try again."))
        if not self.device.verify_token(code):
            raise forms.ValidationError(_("That code is not valid. Codes change every 30 seconds."))
        return code


@login_required
@require_http_methods(["GET", "POST"])
def verify(request):
    """The second step of signing in: the current code of the user's authenticator."""
    device = confirmed_device(request.user)
    if device is None or request.user.is_verified():
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None, device=device)
    if request.method == "POST":
        if form.is_valid():
            otp_login(request, device)
            _record(request, SecurityEvent.TWO_FACTOR_PASSED)
            return redirect(_next_url(request))
        _record(request, SecurityEvent.TWO_FACTOR_FAILED)
    return render(request, "registration/two_factor_verify.html", {"form": form, "next": _next_url(request)})


def _qr_svg(device):
    """The device's otpauth:// URL as an inline SVG QR code (no script, no external image)."""
    out = io.BytesIO()
    qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage).save(out)
    svg = out.getvalue().decode()
    return mark_safe(svg[svg.index("<svg"):])  # drop the XML declaration


@login_required
@require_http_methods(["GET", "POST"])
def setup(request):
    """Set up an authenticator (scan the code, confirm one code), or remove it if not required."""
    user = request.user
    device = confirmed_device(user)
    if device is not None:
        return _manage(request, device)
    pending, _created = TOTPDevice.objects.get_or_create(user=user, confirmed=False,
                                                         defaults={"name": "authenticator"})
    form = CodeForm(request.POST or None, device=pending)
    if request.method == "POST" and form.is_valid():
        pending.confirmed = True
        pending.save(update_fields=["confirmed"])
        otp_login(request, pending)
        _record(request, SecurityEvent.TWO_FACTOR_ENABLED)
        messages.success(request, _("Two-factor sign-in is on. You will be asked for a code at every sign-in."))
        return redirect(_next_url(request))
    key = b32encode(pending.bin_key).decode()  # what the QR code's otpauth:// URL carries
    return render(request, "registration/two_factor_setup.html", {
        "form": form, "qr": _qr_svg(pending), "key": " ".join(key[i:i + 4] for i in range(0, len(key), 4)),
        "required": required_for(user), "next": _next_url(request)})


def _manage(request, device):
    required = required_for(request.user)
    form = CodeForm(request.POST or None, device=device)
    if request.method == "POST" and not required and form.is_valid():
        TOTPDevice.objects.filter(user=request.user).delete()
        _record(request, SecurityEvent.TWO_FACTOR_REMOVED)
        messages.success(request, _("Two-factor sign-in is off."))
        return redirect("two_factor_setup")
    return render(request, "registration/two_factor_manage.html", {"form": form, "required": required})
