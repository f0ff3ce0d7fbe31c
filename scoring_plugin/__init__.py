"""The Django app: items, scored answers, submissions, model versions, admin, pages and API."""
