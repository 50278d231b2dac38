"""The API's pages for people: token management (signed-in users) and the usage guide."""
from axes.helpers import get_client_ip_address
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry.api import problems
from registry.api import redcap_project as redcap
from registry.api.models import KINDS, ApiToken, log_token_event
from registry.api.serializers import TABLES
from registry.models import SecurityEvent


class TokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("What is it for?"), max_length=100,
                           help_text=gettext_lazy("e.g. 'nightly export from our clinical system'"))
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=KINDS, widget=forms.RadioSelect, initial="api")
    read_only = forms.BooleanField(label=gettext_lazy("Read only: may read, never change or delete"),
                                   required=False, initial=True)


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """The user's active tokens; a new token's key is shown in this one response and never again."""
    form = TokenForm(request.POST or None)
    new_key = new_token = None
    verified = request.user.is_verified()  # a token is a standing credential: issued after two factors only
    if request.method == "POST" and not verified:
        messages.error(request, _("Turn on two-factor sign-in (click your user name) and sign in with a code "
                                  "before you create a token."))
    elif request.method == "POST" and form.is_valid():
        new_token, new_key = ApiToken.issue(user=request.user, **form.cleaned_data)
        log_token_event(SecurityEvent.TOKEN_CREATED, new_token, by=request.user,
                        ip_address=get_client_ip_address(request))
        form = TokenForm()
    response = render(request, "api/tokens.html", {
        "form": form, "new_key": new_key, "new_token": new_token,
        "tokens": request.user.api_tokens.active(), "verified": verified,
        "redcap_url": request.build_absolute_uri(reverse("redcap_api")),
        "api_url": request.build_absolute_uri(reverse("api:guide") + "v1/"),
    }, status=201 if new_key else 403 if request.method == "POST" and not verified else 200)
    if new_key:
        response["Cache-Control"] = "no-store"  # the key must not stay in any cache
    return response


@login_required
@require_POST
def token_revoke(request, pk):
    token = get_object_or_404(request.user.api_tokens.active(), pk=pk)
    token.revoke(by=request.user, ip_address=get_client_ip_address(request))
    messages.success(request, _("The token “%(name)s” is revoked: it opens nothing any more.") % {"name": token.name})
    return redirect("api:tokens")


@require_GET
def guide(request):
    """How to use the API and the REDCap endpoint (public: it holds no data)."""
    return render(request, "api/guide.html", {
        "tables": [(table, table.columns) for table in TABLES],
        "api_url": request.build_absolute_uri(reverse("api:guide") + "v1/"),
        "redcap_url": request.build_absolute_uri(reverse("redcap_api")),
        "forms": redcap.FORMS,
        "renamed": [(f"{form}.{column}", name) for (form, column), name in redcap.RENAMED.items()],
        "redcap_version": redcap.REDCAP_VERSION,
        "problem_codes": problems.CODES,
        "api_guide_url": request.build_absolute_uri(reverse("api:guide")),
    })
