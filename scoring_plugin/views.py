"""Pages outside the API: the start page, an answer page for trying an item, and a health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from scoring_plugin.models import Item


def home(request: HttpRequest) -> HttpResponse:
    items = Item.objects.prefetch_related("model_versions") if request.user.is_authenticated else []
    return render(request, "scoring_plugin/home.html", {"items": items})


@login_required
def try_item(request: HttpRequest, pk: int) -> HttpResponse:
    """Answer an item as a student would and watch the score arrive (uses the JSON API).
    Addressed by the item's stable id, so a renamed key does not break the link."""
    item = get_object_or_404(Item, pk=pk)
    return render(request, "scoring_plugin/try_item.html", {"item": item})


def health(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and the demo script."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception as exc:  # report, do not crash the probe
        database = f"error: {exc.__class__.__name__}"
    code = 200 if database == "ok" else 503
    return JsonResponse(
        {"status": "ok" if code == 200 else "degraded", "database": database}, status=code
    )
