"""LTI 1.3 Advantage tool: launches, deep linking, grade passback, rosters (docs/lti.md)."""
