"""Sign-in lockout, in two tiers (django-axes counts the failures, per user name and address):

- AXES_PAIR_FAILURE_LIMIT failed sign-ins of one user name from one address lock that pair: a
  guesser at one address cannot lock the user out at another;
- AXES_USERNAME_FAILURE_LIMIT failed sign-ins of one user name from all addresses together lock
  the user name everywhere: guessing from many addresses is stopped too.

Both last AXES_COOLOFF_TIME; an administrator lifts them earlier (registry.admin). django-axes
compares the failures of the pair (AXES_LOCKOUT_PARAMETERS) with AXES_FAILURE_LIMIT, which is
`failure_limit` below: the pair's limit, or none left once the user name is over its own.
"""
from axes.attempts import get_cool_off_threshold
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


def username_failures(request, username):
    """Failed sign-ins of the user name from every address within the cool-off (one query)."""
    recent = AccessAttempt.objects.filter(username=username, attempt_time__gte=get_cool_off_threshold(request))
    return recent.aggregate(total=Sum("failures_since_start"))["total"] or 0


def failure_limit(request, credentials):
    """The failures this (user name, address) pair may have before it is locked: 0 (locked at
    once) when the user name has reached its limit over all addresses."""
    username = get_client_username(request, credentials)
    if username and username_failures(request, username) >= settings.AXES_USERNAME_FAILURE_LIMIT:
        return 0
    return settings.AXES_PAIR_FAILURE_LIMIT


def client_address(request):
    """The client's address as the lockout and the logs count it. Behind TRUSTED_PROXIES reverse
    proxies (docker-compose: nginx, 1; a TLS terminator in front of it makes 2), each of which appends
    the address it saw to X-Forwarded-For, the client is that many entries from the right; what a
    client writes into the header itself is further left and never read."""
    hops = settings.TRUSTED_PROXIES
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR")
