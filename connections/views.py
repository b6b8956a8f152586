"""Portal pages for a user's Attio connections."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def dashboard(request):
    return render(
        request, "connections/dashboard.html", {"connections": [], "api_keys": []}
    )
