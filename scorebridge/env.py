"""Reading settings from the environment, failing loudly.

Every reader takes the variable's name and a safe default for one machine. A value that is
present but malformed raises ``ImproperlyConfigured`` naming the variable, so a typo in a
deployment stops the process at start-up instead of running with a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(key: str) -> str | None:
    value = os.environ.get(key)
    return None if value is None else value.strip()


def get_from_env(key: str, default: T, cast: Callable[[str], T], expected: str) -> T:
    """Return ``cast(os.environ[key])``, ``default`` when unset, or raise naming ``key``."""
    value = _raw(key)
    if value is None:
        return default
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"Environment variable {key}={value!r} is not {expected}: {exc}"
        ) from exc


def env_str(key: str, default: str) -> str:
    value = _raw(key)
    return default if value is None or value == "" else value


def env_bool(key: str, default: bool) -> bool:
    def cast(value: str) -> bool:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("use one of 1/0, true/false, yes/no, on/off")

    return get_from_env(key, default, cast, "a boolean")


def env_int(key: str, default: int, *, minimum: int | None = None) -> int:
    def cast(value: str) -> int:
        number = int(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return get_from_env(key, default, cast, "a whole number")


def env_float(key: str, default: float, *, minimum: float | None = None) -> float:
    def cast(value: str) -> float:
        number = float(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}")
        return number

    return get_from_env(key, default, cast, "a number")


def env_list(key: str, default: list[str]) -> list[str]:
    def cast(value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]

    return get_from_env(key, default, cast, "a comma-separated list")


def env_choice(key: str, default: str, choices: tuple[str, ...]) -> str:
    def cast(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return get_from_env(key, default, cast, "a valid choice")
