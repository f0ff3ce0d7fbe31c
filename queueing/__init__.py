"""Queueing: the Celery app, its queues and routes, sending work, and asking the broker.

The web (``scoring_plugin``, ``lti``) and the workers both import this package; it imports
neither (task modules are named as strings: routes, ``include``, autodiscovery), so the web
enqueues without loading torch, and ``workers`` never has to be imported by the web.
"""
