"""Config values checked when the config is built, before any data or model is loaded.

A project registers checks for its config adder; :func:`shared.engine.build_cfg` runs them after the yaml and
the command-line overrides are merged, so a bad value stops the run at once with an error naming its key::

    @config_check(add_simd_config)
    def _check_thresholds(cfg):
        check_range(cfg, "MODEL.RPN.SIM_NMS_THRESH", low=0.0, high=1.0)

Checks of the keys every run of a framework reads are registered under the framework's name
(``@config_check("detectron2")``, ``@config_check("fastreid")``: :mod:`shared.engine.run_checks`) and run
before the project's own.

Every check raises :class:`ConfigValueError` (a ``ValueError``) whose message starts with the key.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

__all__ = ["ConfigValueError", "check_choice", "check_positive", "check_range", "config_check", "get_key",
           "run_config_checks"]

_CHECKS: Dict[Union[Callable, str], List[Callable[[Any], None]]] = {}


class ConfigValueError(ValueError):
    """A config value outside its valid range; ``key`` is the dotted config key."""

    def __init__(self, key: str, value: Any, rule: str):
        self.key, self.value, self.rule = key, value, rule
        super().__init__(f"{key}={value!r}: {rule}")


def config_check(add_project_config: Union[Callable, str]
                 ) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Decorator registering ``fn(cfg)`` to run whenever a config is built with ``add_project_config`` (a
    config adder, or a framework name: every config of that framework)."""

    def decorator(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        _CHECKS.setdefault(add_project_config, []).append(fn)
        return fn

    return decorator


def run_config_checks(cfg: Any, adders: Iterable[Union[Callable, str]]) -> None:
    """Run the checks registered for each of ``adders`` (config adders or framework names) on ``cfg``
    (raises the first failure)."""
    for add in adders:
        for fn in _CHECKS.get(add, ()):
            fn(cfg)


def get_key(cfg: Any, key: str) -> Any:
    """``cfg.A.B.C`` for ``key="A.B.C"``."""
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_range(cfg: Any, key: str, *, low: Optional[float] = None, high: Optional[float] = None,
                low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """``low <= value <= high`` (bounds inclusive unless told otherwise) and finite."""
    value = get_key(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        opening = "[" if low_inclusive and low is not None else "("
        closing = "]" if high_inclusive and high is not None else ")"
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{opening}{lo}, {hi}{closing}"
        raise ConfigValueError(key, value, f"must be a finite number in {interval}")


def check_positive(cfg: Any, key: str) -> None:
    """``value > 0`` and finite (temperatures, scales, lengths)."""
    check_range(cfg, key, low=0.0, low_inclusive=False)


def check_choice(cfg: Any, key: str, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices``."""
    value = get_key(cfg, key)
    choices = list(choices)
    if value not in choices:
        raise ConfigValueError(key, value, f"must be one of {choices}")
