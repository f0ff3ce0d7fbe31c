"""The Django project: settings, URLs and WSGI entry point."""
