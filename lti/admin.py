from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from lti.models import ItemLtiSettings, LtiSubmission, UsedNonce
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
        "override_score",
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
        "overridden_by",
        "overridden_at",
    ]
    actions = ["send_again"]

    @admin.action(description="Send score to the gradebook again")
    def send_again(self, request: HttpRequest, queryset: QuerySet[LtiSubmission]) -> None:
        queued = sum(enqueue_post_score(str(pk)) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{queued} score(s) queued.", messages.SUCCESS)


@admin.register(UsedNonce)
class UsedNonceAdmin(admin.ModelAdmin):
    list_display = ["issuer", "nonce", "expires_at"]
    search_fields = ["issuer", "nonce"]
