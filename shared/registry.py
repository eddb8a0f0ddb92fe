"""Two helpers for fvcore-style registries (detectron2's and fastreid's ``Registry``) and plain dicts.

* :func:`register_as` registers an object under a name other than its ``__name__`` (fvcore's public
  ``register`` only knows ``__name__``; the name-taking method is private, so it is called here only);
* :func:`get_or_raise` looks a name up and, when it is unknown, raises a ``KeyError`` that names the config
  key and lists every valid choice -- the one "unknown X; choose one of ..." message of the toolkit.

A choice among two or three fixed options is a plain ``dict`` (``get_or_raise`` takes those too); a
registry is for choices a user may extend from their own code.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, List, Mapping, TypeVar, Union

__all__ = ["choices_of", "get_or_raise", "register_as"]

T = TypeVar("T")


def register_as(registry: Any, name: str) -> Callable[[T], T]:
    """Decorator: ``@register_as(REGISTRY, "one_queue")`` registers the decorated object as ``name``.

    Works on fvcore / detectron2 / fastreid registries and on plain dicts; registering a name twice raises
    the registry's own ``AssertionError`` (dicts: ``KeyError``), so a typo cannot silently shadow a choice.
    """

    def decorator(obj: T) -> T:
        if isinstance(registry, dict):
            if name in registry:
                raise KeyError(f"{name!r} is registered already")
            registry[name] = obj
        else:
            registry._do_register(name, obj)  # fvcore's Registry: the one call of its private API
        return obj

    return decorator


def choices_of(registry: Union[Mapping[str, Any], Any]) -> List[str]:
    """Sorted names of a dict or an fvcore-style registry (which iterates as ``(name, obj)`` pairs)."""
    if isinstance(registry, Mapping):
        return sorted(registry)
    return sorted(name for name, _ in registry)


def get_or_raise(registry: Union[Mapping[str, T], Any], name: str, key: str) -> T:
    """``registry[name]``; an unknown name raises ``KeyError("unknown <key> '<name>'; choose one of [...]")``.

    Args:
        registry: a dict or an fvcore-style registry.
        name: the value read from the config.
        key: the config key it came from (e.g. ``"MODEL.RDCD.LOSS.KD_MODE"``), so the message names it.
    """
    known: Iterable[str] = choices_of(registry)
    if name not in known:
        raise KeyError(f"unknown {key} {name!r}; choose one of {list(known)}")
    if isinstance(registry, Mapping):
        return registry[name]
    return registry.get(name)
