"""The remaining admins: scored (training) answers, answers waiting for a human score, and the
read-only audit log."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from scoring_plugin import admin_trust
from scoring_plugin.models import AuditLog, ScoredAnswer, UnscoredAnswer


@admin.register(ScoredAnswer)
class ScoredAnswerAdmin(admin.ModelAdmin):
    list_display = ["response_key", "item", "score", "split", "source"]
    list_filter = ["split", "source", "item"]
    search_fields = ["response_key", "text"]
    list_select_related = ["item"]


@admin.register(UnscoredAnswer)
class UnscoredAnswerAdmin(admin.ModelAdmin):
    """Imported answers that wait for a human score: scored from the item page's "What to
    score next" (they then become training answers); read-only here."""

    list_display = ["response_key", "item", "imported_at"]
    list_filter = ["item"]
    search_fields = ["response_key", "text"]
    list_select_related = ["item"]
    readonly_fields = ["item", "response_key", "text", "imported_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the code that changes scores and models."""

    list_display = ["created_at", "action", "actor", "item", "model_version", "submission"]
    list_filter = ["action", "item"]
    search_fields = ["actor", "item__key"]
    list_select_related = ["item", "model_version__item"]
    readonly_fields = [
        "created_at",
        "action",
        "actor",
        "item",
        "model_version",
        "submission",
        "details",
    ]
    change_list_template = "admin/scoring_plugin/auditlog/change_list.html"

    def get_urls(self):  # type: ignore[no-untyped-def]
        return admin_trust.urls(self) + super().get_urls()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
