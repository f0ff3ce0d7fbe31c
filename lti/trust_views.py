"""The model card of an item's active model, for the course's instructors in the LMS frame
(issue 18): what the model is for, how accurate, how easily gamed, as HTML, Markdown or JSON."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from lti.frames import framed
from lti.models import LtiSubmission
from lti.views.common import launch_session, require_instructor
from scoring_plugin.model_cards import build_card, card_markdown
from scoring_plugin.models import Item


@csrf_exempt
@framed
@require_GET
def model_card(request: HttpRequest, token: str) -> HttpResponse:
    """``?item=<key>``: an item of this launch or with answers in this course."""
    session = launch_session(request, token)
    require_instructor(session)
    key = request.GET.get("item", "") or session.item_key
    in_course = (
        key == session.item_key
        or LtiSubmission.objects.filter(
            context_id=session.context_id, submission__item__key=key
        ).exists()
    )
    item = Item.objects.filter(key=key).first() if key and in_course else None
    version = item.active_version if item is not None else None
    if version is None:
        raise Http404("No active model for this item in this course.")
    card = build_card(version)
    fmt = request.GET.get("format", "")
    if fmt in ("md", "json"):
        body = card_markdown(card) if fmt == "md" else json.dumps(card, indent=2, sort_keys=True)
        response = HttpResponse(
            body, content_type="text/markdown" if fmt == "md" else "application/json"
        )
        response["Content-Disposition"] = f'attachment; filename="{version.label}.{fmt}"'
        return response
    return render(
        request,
        "lti/model_card.html",
        {"session": session, "card": card_markdown(card), "item": item, "version": version},
    )
