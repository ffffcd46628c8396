"""The service's reach into modules other helpers write (``kkt.cloud.atol``, ``.pool``,
``.emulated``, ``.callbacks``, ``.metrics``, ``.ui``) and the driver's newer names.

Each is looked up when first needed, and its absence is reported as what is missing: the service
runs (and its own tests pass) with only the parts present, and picks the others up when they are
merged.  The names called are the contract's (docs/CLOUD contract: ``to_order``, ``report_json``,
``accepted_json``, ``ApiError``, ``RegisterPool``, ``RegisterSpec``, ``EmulatedPool``,
``CallbackSender``, ``ui_router``, ``metrics_text``).
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from .model import ReportView


class MissingPart(RuntimeError):
    """A module of the service that is not installed here."""


def optional(name: str) -> ModuleType | None:
    """``kkt.cloud.<name>``, or None when it is absent (not when it fails to import)."""
    full = f"kkt.cloud.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as error:
        if error.name is not None and (full == error.name or full.startswith(error.name + ".")):
            return None
        raise


def required(name: str, attribute: str) -> Any:
    module = optional(name)
    if module is None or not hasattr(module, attribute):
        raise MissingPart(
            f"kkt.cloud.{name}.{attribute} is not part of this installation: the service needs "
            "it for this request; install a complete kktkit[cloud]"
        )
    return getattr(module, attribute)


def report_json(view: ReportView) -> dict[str, Any]:
    """ATOL's report of ``view`` (the API layer's `report_json`; it is given the api version
    when its signature asks for it: the contract names both ``(view)`` and ``(api, view)``)."""
    function = required("atol", "report_json")
    positional = [
        parameter
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) >= 2:
        return dict(function(view.api, view))
    return dict(function(view))
