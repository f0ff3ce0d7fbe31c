"""Admin for API tokens: a new token's key is shown once, when it is made."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html
from rest_framework.authtoken.models import TokenProxy

from scoring_plugin.tokens import ApiToken, hash_key

# DRF's plain-text token admin would make tokens that no longer authenticate.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at"]
    search_fields = ["prefix", "name", "user__username"]
    autocomplete_fields = ["user"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None:
            return ["user", *self.readonly_fields]
        return list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        import secrets

        key = secrets.token_hex(20)
        obj.key_hash = hash_key(key)
        obj.prefix = key[:8]
        obj.save()
        self.message_user(
            request,
            format_html('API token (shown only now): <code id="api-token">{}</code>', key),
            messages.SUCCESS,
        )
