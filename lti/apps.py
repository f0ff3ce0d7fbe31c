from django.apps import AppConfig


class LtiConfig(AppConfig):
    name = "lti"
    verbose_name = "Scorebridge LTI 1.3 tool"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lti import receivers, student_data

        receivers.connect()
        student_data.register()
