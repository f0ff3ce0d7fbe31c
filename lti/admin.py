from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from lti_tool.admin import LtiRegistrationAdmin as BaseLtiRegistrationAdmin
from lti_tool.models import LtiRegistration

from lti.frames import forget_platform_origins
from lti.models import ItemLtiSettings, LtiSubmission, RegistrationInvite, UsedNonce
from lti.tasks import enqueue_post_score


@admin.register(ItemLtiSettings)
class ItemLtiSettingsAdmin(admin.ModelAdmin):
    list_display = ["item", "max_attempts", "post_mode", "gradebook_policy"]
    list_editable = ["max_attempts", "post_mode", "gradebook_policy"]
    autocomplete_fields = ["item"]


@admin.register(LtiSubmission)
class LtiSubmissionAdmin(admin.ModelAdmin):
    """Grade passback per submission: its state, tries and last error."""

    list_display = [
        "submission",
        "lti_user",
        "context",
        "attempt",
        "passback_status",
        "passback_tries",
        "posted_at",
        "passback_error",
    ]
    list_filter = ["passback_status", "context__deployment__registration"]
    search_fields = ["submission__id", "lti_user__sub", "lti_user__name", "passback_error"]
    readonly_fields = [
        "submission",
        "context",
        "resource_link",
        "lti_user",
        "attempt",
        "line_item_url",
        "line_items_url",
        "ags_scopes",
        "passback_status",
        "passback_error",
        "passback_tries",
        "posted_grade",
        "last_timestamp",
        "posted_at",
    ]
    actions = ["send_again"]

    @admin.action(description="Send score to the gradebook again", permissions=["change"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[LtiSubmission]) -> None:
        queued = sum(enqueue_post_score(str(pk)) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{queued} score(s) queued.", messages.SUCCESS)


@admin.register(UsedNonce)
class UsedNonceAdmin(admin.ModelAdmin):
    list_display = ["issuer", "nonce", "expires_at"]
    search_fields = ["issuer", "nonce"]


@admin.register(RegistrationInvite)
class RegistrationInviteAdmin(admin.ModelAdmin):
    """One-time links for LTI Dynamic Registration. The link is shown once, when it is made."""

    list_display = ["__str__", "state", "auto_activate", "created_at", "expires_at", "registration"]
    list_filter = ["auto_activate"]
    search_fields = ["note", "outcome"]
    fields = [
        "note",
        "expires_at",
        "auto_activate",
        "created_by",
        "created_at",
        "used_at",
        "registration",
        "outcome",
    ]
    readonly_fields = ["created_by", "created_at", "used_at", "registration", "outcome"]

    @admin.display(description="state")
    def state(self, invite: RegistrationInvite) -> str:
        return invite.state

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"expires_at": timezone.now() + timedelta(days=1)}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None:  # a made link cannot be changed, only deleted (revoked)
            return [*self.fields]
        return list(self.readonly_fields)

    def save_model(
        self, request: HttpRequest, obj: RegistrationInvite, form: Any, change: bool
    ) -> None:
        if change:
            return
        from lti.views.common import tool_url

        token = RegistrationInvite.new_token()
        obj.token_hash = RegistrationInvite.hash_token(token)
        obj.created_by = request.user if request.user.is_authenticated else None
        obj.save()
        url = tool_url(request, "register", invite_token=token)
        self.message_user(
            request,
            format_html(
                "Registration link (shown only now; copy it into the LMS as the tool's "
                'registration URL): <code id="registration-link">{}</code>',
                url,
            ),
            messages.SUCCESS,
        )


admin.site.unregister(LtiRegistration)


@admin.register(LtiRegistration)
class LtiRegistrationAdmin(BaseLtiRegistrationAdmin):
    """django-lti's registration admin, with approval actions for dynamically registered
    platforms (they arrive inactive)."""

    list_filter = ["is_active"]
    actions = ["approve", "deactivate"]

    @admin.action(
        description="Approve: activate the registration and its deployments", permissions=["change"]
    )
    def approve(self, request: HttpRequest, queryset: QuerySet[LtiRegistration]) -> None:
        count = 0
        for registration in queryset:
            registration.is_active = True
            registration.save(update_fields=["is_active", "datetime_modified"])
            registration.deployments.update(is_active=True)
            count += 1
        forget_platform_origins()
        self.message_user(request, f"{count} registration(s) approved.", messages.SUCCESS)

    @admin.action(description="Deactivate the registration", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[LtiRegistration]) -> None:
        count = queryset.update(is_active=False)
        forget_platform_origins()
        self.message_user(request, f"{count} registration(s) deactivated.", messages.SUCCESS)
