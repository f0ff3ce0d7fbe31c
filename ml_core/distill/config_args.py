"""Command-line flags for every :class:`DistillConfig` field, generated from the dataclass so the
help text lives in one place (the field metadata)."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from dataclasses import fields

from ml_core.distill.config import DistillConfig


def add_config_arguments(parser: argparse.ArgumentParser, skip: Collection[str] = ()) -> None:
    """Add ``--<field>`` for each field (``--lambda_sweep 0.5,1,2`` for tuples)."""
    group = parser.add_argument_group("student and distillation (DistillConfig)")
    defaults = DistillConfig()
    for f in fields(DistillConfig):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        shown = ",".join(str(v) for v in default) if isinstance(default, tuple) else default
        text = str(f.metadata.get("help", "")).replace("%", "%%")
        group.add_argument(
            f"--{f.name}", default=None, metavar="VALUE", help=f"{text} (default: {shown})"
        )


def config_from_arguments(args: argparse.Namespace, **overrides: object) -> DistillConfig:
    """A validated :class:`DistillConfig` from the parsed flags; ``overrides`` win over flags."""
    config = DistillConfig()
    for f in fields(DistillConfig):
        raw = getattr(args, f.name, None)
        if raw is None:
            continue
        current = getattr(config, f.name)
        value: object
        if isinstance(current, bool):
            value = str(raw).lower() in ("1", "true", "yes", "on")
        elif isinstance(current, tuple):
            value = tuple(float(v) for v in str(raw).split(",") if v.strip())
        elif isinstance(current, int):
            value = int(raw)
        elif isinstance(current, float):
            value = float(raw)
        else:
            value = None if str(raw).lower() == "none" else str(raw)
        setattr(config, f.name, value)
    for name, value in overrides.items():
        setattr(config, name, value)
    config.validate()
    return config
