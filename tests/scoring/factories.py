"""factory_boy factories for the scoring app's rows."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

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
