"""factory_boy factories for the LTI tests."""

from __future__ import annotations

import factory
from lti_tool.models import LtiDeployment, LtiRegistration

from scoring_plugin.models import Item, ModelVersion


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"item-{n + 1}")
    prompt = "Why does TCP use sequence numbers?"
    reference_answer = "To order segments and detect loss."
    max_score = 3
    review_threshold = 0.6


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    item = factory.SubFactory(ItemFactory)
    number = 1
    status = ModelVersion.Status.READY
    is_active = True


class RegistrationFactory(factory.django.DjangoModelFactory):
    """A django-lti registration for a ``TestPlatform`` (pass ``platform=``)."""

    class Meta:
        model = LtiRegistration
        exclude = ("platform",)

    platform = None
    name = factory.LazyAttribute(lambda o: o.platform.name)
    issuer = factory.LazyAttribute(lambda o: o.platform.issuer)
    client_id = factory.LazyAttribute(lambda o: o.platform.client_id)
    auth_url = factory.LazyAttribute(lambda o: o.platform.auth_url)
    token_url = factory.LazyAttribute(lambda o: o.platform.token_url)
    keyset_url = factory.LazyAttribute(lambda o: o.platform.jwks_url)


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LtiDeployment

    registration = factory.SubFactory(RegistrationFactory)
    deployment_id = "deployment-1"
    is_active = True
