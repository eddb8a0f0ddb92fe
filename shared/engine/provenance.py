"""Provenance of presets: hold a resolved config against a table of official values, key by key.

A table row is ``(dotted key, expected value, source)``; the source names the official file and line (or
log), or starts with :data:`OURS` followed by the reason when the value has no official counterpart. The
provenance tests of every project and their README/PRESETS generators use these helpers;
:func:`undetected_mutations` checks that a provenance test really fails when a listed value changes.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import yaml

Row = Tuple[str, Any, str]  # (config key, value, source -- "ours: <why>" when there is no official value)

#: prefix of a source that has no official counterpart; the reason follows it
OURS = "ours: "


def flatten(node: Mapping, prefix: str = "") -> Dict[str, Any]:
    """A (yacs / detectron2 / fastreid) CfgNode or nested dict -> ``{"A.B.C": value}`` of its leaves."""
    out: Dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def same(actual: Any, expected: Any, rel: float = 1e-9, strict_types: bool = True) -> bool:
    """Equality of config values: lists and tuples compare element-wise (either kind); a float (expected, or
    either side without ``strict_types``) matches an int or float within ``|a - e| <= rel |e|``;
    other values must be equal and, with ``strict_types``, of the same type (so ``True`` is not ``1``)."""
    if isinstance(expected, (list, tuple)) or isinstance(actual, (list, tuple)):
        return (isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple))
                and len(actual) == len(expected)
                and all(same(a, e, rel, strict_types) for a, e in zip(actual, expected)))
    if isinstance(expected, float) or (not strict_types and isinstance(actual, float)):
        numbers = (int, float)
        return (isinstance(actual, numbers) and isinstance(expected, numbers)
                and not isinstance(actual, bool)
                and (actual == expected or abs(actual - expected) <= rel * abs(expected)))
    if strict_types and type(actual) is not type(expected):
        return False
    return actual == expected


def get_value(cfg: Mapping, key: str) -> Any:
    """The value at dotted ``key`` of a CfgNode / nested dict (KeyError naming the key when absent)."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"config has no key {key}")
        node = node[part]
    return node


def diff(cfg: Mapping, rows: Iterable[Row], rel: float = 1e-9, strict_types: bool = True) -> List[str]:
    """One message per row whose value differs from the resolved ``cfg``: key, ours, official, source.
    A callable table value is a predicate on the resolved value (for values only known at run time)."""
    wrong = []
    for key, value, source in rows:
        actual = get_value(cfg, key)
        if not (value(actual) if callable(value) else same(actual, value, rel, strict_types)):
            wrong.append(f"{key}: resolved {actual!r} != table {value!r} ({source})")
    return wrong


def assert_rows(cfg: Mapping, rows: Sequence[Row], what: str, **kw: Any) -> None:
    """Fail naming every drifted key (see :func:`diff`), a key listed twice or a blank source."""
    keys = [key for key, _, _ in rows]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    assert not twice, f"{what}: keys listed twice {twice}"
    blank = [key for key, _, source in rows if not str(source).strip()]
    assert not blank, f"{what}: rows without a source {blank}"
    wrong = diff(cfg, rows, **kw)
    assert not wrong, f"{what} differs from its table:\n" + "\n".join(wrong)


def unlisted_changes(cfg: Mapping, defaults: Mapping, listed: Iterable[str]) -> List[str]:
    """Keys whose resolved value differs from ``defaults`` but have no row in ``listed`` (sorted)."""
    base = flatten(defaults)
    changed = {key for key, value in flatten(cfg).items() if key not in base or not same(value, base[key])}
    return sorted(changed - set(listed))


def keys_set_by_yaml(path: Union[str, Path]) -> Set[str]:
    """Dotted keys a yaml config file sets itself or through its ``_BASE_`` chain (``VERSION`` excluded)."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    keys: Set[str] = set()
    base = data.pop("_BASE_", None)
    if base:
        keys |= keys_set_by_yaml(os.path.join(os.path.dirname(str(path)), base))
    return (keys | set(flatten(data))) - {"VERSION"}


def ours_without_reason(rows: Iterable[Row], min_reason: int = 10) -> List[str]:
    """Keys of "ours" rows whose reason is shorter than ``min_reason`` characters."""
    return [key for key, _, source in rows
            if str(source).startswith(OURS) and len(source) <= len(OURS) + min_reason]


def load_module_file(path: Union[str, Path], name: Optional[str] = None) -> ModuleType:
    """Import the Python file ``path`` as module ``name`` (default: its stem) without touching sys.path,
    e.g. a project's ``train_net.py`` / ``predict.py`` script or a table beside a test."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_module_beside(test_file: str, filename: str) -> ModuleType:
    """Import ``filename`` from the folder of ``test_file`` (pytest's importlib mode adds no sys.path)."""
    return load_module_file(Path(test_file).with_name(filename))


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: ``header`` cells, then one line per row of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def source_cell(source: str) -> str:
    """A source for a Markdown table, "ours" sources shown as **ours**: reason."""
    return f"**ours**: {source[len(OURS):]}" if source.startswith(OURS) else source


def changed_value(value: Any) -> Any:
    """A different value of the same kind: ``not`` a bool, ``+1`` an int, ``x + 1 + |x|`` a float, a suffix on
    a string, one element less (or one more when empty) for a list or tuple, a string for ``None``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 1.0 + abs(value)
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, (list, tuple)):
        return type(value)(list(value)[:-1] if value else ["changed"])
    if value is None:
        return "changed"
    raise TypeError(f"no changed value for {value!r}")


def set_value(cfg: Any, key: str, value: Any) -> None:
    """Set dotted ``key`` of an unfrozen CfgNode / nested dict (KeyError naming the key when absent)."""
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    if leaf not in node:
        raise KeyError(f"config has no key {key}")
    node[leaf] = value


def undetected_mutations(check: Callable[[Any], Iterable[str]], cfg: Any, keys: Iterable[str]) -> List[str]:
    """The ``keys`` whose :func:`changed_value` in a copy of ``cfg`` (a CfgNode) makes ``check`` report no
    message naming the key: a provenance check that cannot fail on them. ``check(cfg)`` returns the list of
    its complaints (e.g. :func:`diff`)."""
    escaped = []
    for key in keys:
        mutated = cfg.clone()
        mutated.defrost()
        set_value(mutated, key, changed_value(get_value(mutated, key)))
        if not any(key in message for message in check(mutated)):
            escaped.append(key)
    return escaped


def problems(cfg: Mapping, rows: Sequence[Row], defaults: Mapping,
             elsewhere: Iterable[str] = ()) -> List[str]:
    """Everything a provenance test objects to: the rows that drifted (:func:`diff`) and the keys changed
    from ``defaults`` with no row (:func:`unlisted_changes`; ``elsewhere``: keys tabled by another table)."""
    listed = [key for key, _, _ in rows] + list(elsewhere)
    return diff(cfg, rows) + [f"{key}: changed from the default without a row"
                              for key in unlisted_changes(cfg, defaults, listed)]


@dataclass
class ProjectTables:
    """A project's provenance tables: its presets' rows and its config adder's defaults.

    ``framework_defaults()`` returns the framework's default config (detectron2's ``get_cfg``);
    ``add_config`` adds the project's keys; ``presets`` maps a preset file to its rows; ``adder_defaults``
    lists every key the adder adds or changes; ``elsewhere`` names keys another table holds (weights)."""

    framework_defaults: Callable[[], Any]
    add_config: Callable[[Any], Any]
    presets: Mapping[str, Sequence[Row]]
    adder_defaults: Sequence[Row]
    elsewhere: Sequence[str] = ()

    def defaults(self, with_adder: bool = True) -> Any:
        """The framework's defaults with the shared keys :func:`~shared.engine.build_cfg` adds for every
        project (``add_checkpoint_config``), then the project's adder when ``with_adder``."""
        from shared.engine.checkpoint import add_checkpoint_config

        cfg = self.framework_defaults()
        add_checkpoint_config(cfg)
        if with_adder:
            self.add_config(cfg)
        return cfg

    def preset_problems(self, cfg: Any, preset: str) -> List[str]:
        """Drifted rows of ``preset`` and keys it changes without a row (see :func:`problems`)."""
        return problems(cfg, self.presets[preset], self.defaults(), self.elsewhere)

    def adder_problems(self, cfg: Any) -> List[str]:
        """Drifted adder defaults and adder keys without a row (compared with the framework's defaults)."""
        return problems(cfg, self.adder_defaults, self.defaults(with_adder=False), self.elsewhere)
