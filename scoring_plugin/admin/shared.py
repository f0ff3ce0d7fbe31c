"""What the item and version admins share: the permissions their actions declare, the actor
written to the audit log, and the merge page both offer."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from scoring_plugin.admin.forms import MergeForm
from scoring_plugin.models import Item
from scoring_plugin.services import merge_sources, start_merge

TRAIN_PERMISSION = "scoring_plugin.train_item"
ACTIVATE_PERMISSION = "scoring_plugin.activate_modelversion"
RESCORE_PERMISSION = "scoring_plugin.rescore_submission"


class ModelPermissions:
    """``has_train_permission`` and ``has_activate_permission`` for the actions that declare
    ``permissions=["train"]`` or ``["activate"]``: training, distilling, merging and cancelling
    need ``train_item``; activating, rolling back and archiving need ``activate_modelversion``.
    A view-only staff user has neither, so Django admin neither offers nor runs them."""

    def has_train_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(TRAIN_PERMISSION))

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(ACTIVATE_PERMISSION))


def admin_actor(request: HttpRequest) -> str:
    user = request.user
    return f"admin:{user.get_username()}" if user.is_authenticated else "admin:?"


def merge_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    items: list[Item],
    selected: list[int],
) -> HttpResponse | None:
    """The "Merge (GW plan)" action: a page with the job's settings; "Start merging" enqueues it.

    ``selected`` are the primary keys the action was called with (items or versions), posted
    back with the form.
    """
    items = sorted(set(items), key=lambda i: i.key)
    keys = [item.key for item in items]
    problem = ""
    kind = ""
    try:
        kind = next(iter(merge_sources(items).values())).kind
    except ValidationError as exc:
        problem = " ".join(exc.messages)
    if request.POST.get("apply") and not problem:
        form = MergeForm(request.POST, request.FILES, item_keys=keys)
        if form.is_valid():
            try:
                versions = start_merge(items, form.options(kind))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                model_admin.message_user(
                    request,
                    f"Merge job {versions[0].progress.get('job')} queued for {len(versions)} "
                    "item(s); its versions appear under each item, inactive, when it is done.",
                )
                return None
    else:
        form = MergeForm(item_keys=keys)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Merge the selected items' models (GW plan)",
        "items": [(item, item.active_version) for item in items],
        "selected": selected,
        "form": form,
        "problem": problem,
        "action_name": "merge_gw",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/scoring_plugin/item/merge.html", context)
