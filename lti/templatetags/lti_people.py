"""``{{ lti_user|person }}`` and ``{{ member|member_name }}``: names as ``lti.people`` gives them."""

from __future__ import annotations

from collections.abc import Mapping

from django import template
from lti_tool.models import LtiUser

from lti.people import display_name, name_from

register = template.Library()


@register.filter
def person(user: LtiUser) -> str:
    return display_name(user)


@register.filter
def member_name(member: Mapping[str, object]) -> str:
    return name_from(member)
