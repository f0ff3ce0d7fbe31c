"""factory_boy factories for every test folder: the scoring app's rows, then the LTI ones.

The LTI tests' item and model version differ from the scoring ones (a get-or-create item worth
3 points with a review threshold; an active version number 1), so they carry their own names:
``LtiItemFactory`` and ``LtiModelVersionFactory``.
"""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from lti_tool.models import LtiDeployment, LtiRegistration

from scoring_plugin.models import Item, ModelVersion, ScoredAnswer, Submission


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = False


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    key = factory.Sequence(lambda n: f"item-{n}")
    prompt = "Name the two protocols of the transport layer."
    reference_answer = "TCP and UDP."
    language = Item.Language.ENGLISH
    max_score = 2


class ScoredAnswerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoredAnswer

    item = factory.SubFactory(ItemFactory)
    response_key = factory.Sequence(lambda n: f"r{n}")
    text = "tcp udp"
    score = 2


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    item = factory.SubFactory(ItemFactory)
    number = factory.Sequence(lambda n: n + 1)
    kind = ModelVersion.Kind.HEAD
    status = ModelVersion.Status.READY


class SubmissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Submission

    item = factory.SubFactory(ItemFactory)
    text = "tcp and udp"


# LTI


class LtiItemFactory(factory.django.DjangoModelFactory):
    """The item an LTI launch points at: fetched by key when it exists, worth 3 points."""

    class Meta:
        model = Item
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"item-{n + 1}")
    prompt = "Why does TCP use sequence numbers?"
    reference_answer = "To order segments and detect loss."
    max_score = 3
    review_threshold = 0.6


class LtiModelVersionFactory(factory.django.DjangoModelFactory):
    """An active, ready version number 1 of an LTI item."""

    class Meta:
        model = ModelVersion

    item = factory.SubFactory(LtiItemFactory)
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
