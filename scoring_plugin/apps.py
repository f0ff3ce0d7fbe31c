from django.apps import AppConfig


class ScoringPluginConfig(AppConfig):
    name = "scoring_plugin"
    verbose_name = "Scorebridge scoring"
    default_auto_field = "django.db.models.BigAutoField"
