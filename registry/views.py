from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from registry import access


@login_required
def home(request):
    centres = access.centres_readable(request.user)
    return render(request, "registry/home.html", {"centres": centres})
