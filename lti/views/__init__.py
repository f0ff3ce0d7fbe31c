"""Tool endpoints: OIDC login, launch, JWKS and deep linking (``launches``), the learner's pages
(``learner``) and the instructor's (``instructor``), shown in the LMS frame.

Pages after the launch are addressed by a launch token (``lti.sessions``) and read only rows of
the launch's own platform, deployment and context. They are CSRF-exempt because the unguessable
token in the URL does what the CSRF cookie would, and that cookie is often blocked in the frame;
each is defined with :func:`lti.views.common.launch_page`.
"""
