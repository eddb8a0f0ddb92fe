"""Config files and proposal files are data: reading them never runs code; prediction files are written whole.

fvcore's ``CfgNode.load_yaml_with_base`` (which detectron2's ``CfgNode.merge_from_file`` calls with
``allow_unsafe=True``) retries a file that ``yaml.safe_load`` refuses with ``yaml.unsafe_load``, so a config
holding ``!!python/object/apply:os.system [...]`` runs the command -- directly or from any file of its
``_BASE_`` chain, which may also be an http(s) URL. detectron2's ``load_proposals_into_dataset`` reads
``DATASETS.PROPOSAL_FILES_TRAIN`` / ``_TEST`` with ``pickle.load``.

:func:`load_yaml_with_base` replaces the loader of fvcore's and fastreid's ``CfgNode`` (installed by
:func:`shared.compat.apply`, so every entry point that imports ``shared`` gets it):

* every file of the chain is parsed with ``yaml.safe_load`` only; ``allow_unsafe`` is ignored, and a Python
  tag is a :class:`ConfigFileError` naming the file and the line -- with one exception that runs no code:
  ``!!python/object/apply:eval ["<expression>"]`` whose expression is arithmetic on number literals, lists,
  tuples and list comprehensions over them, as detectron2's model-zoo ``Base-RetinaNet.yaml`` writes its
  anchor sizes (``[[x, x * 2**(1.0/3), x * 2**(2.0/3)] for x in [32, 64, 128, 256, 512]]``); it is computed
  by :func:`arithmetic_value` (an ``ast`` walk, never ``eval``), anything else in it is refused;
* ``_BASE_`` (a string or a list of strings) names local files only, relative to the file that names them
  (``~`` expanded); a URL is refused -- download the file and name the copy;
* a ``_BASE_`` cycle or self-reference, an empty file, a file whose top level is not a mapping, a Python
  file (``.py``) and a missing file are each a :class:`ConfigFileError` naming the file.

:func:`load_proposals_into_dataset` replaces detectron2's: the same behaviour, with the file read by the
restricted unpickler :func:`shared.engine.checkpoint.safe_pickle_load` (dicts, lists, tuples, strings,
numbers, numpy arrays).

:func:`patch_evaluator_writes` makes detectron2's COCO and LVIS evaluators write their prediction files
atomically (an ``--eval-only`` that fails while writing keeps the previous files whole).
"""
from __future__ import annotations

import ast
import logging
import operator
import os
import re
from typing import Any, Dict, List, Sequence

import yaml

__all__ = ["BASE_KEY", "ConfigFileError", "arithmetic_value", "load_proposals_into_dataset",
           "load_yaml_with_base", "patch_evaluator_writes", "patch_fastreid_config", "patch_fvcore_config",
           "patch_proposal_loader"]

BASE_KEY = "_BASE_"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ConfigFileError(ValueError):
    """A config file that cannot be used (missing, empty, not a yaml mapping, unsafe tag, ``_BASE_``
    cycle)."""


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
#: bounds that keep an arithmetic expression cheap: |exponent|, |any value|, elements of a list
_MAX_EXPONENT, _MAX_MAGNITUDE, _MAX_ITEMS = 64, 1e12, 10_000


def arithmetic_value(expression: str) -> Any:
    """The value of ``expression`` if it is arithmetic on numbers: int / float literals, ``+ - * / // % **``,
    unary ``-`` / ``+``, lists and tuples, and list comprehensions ``[e for x in <list> ...]`` (no ``if``)
    whose names are the comprehension's own variables. Computed by walking its ``ast`` (nothing is passed to
    ``eval``); anything else -- a call, an attribute, a free name, a string -- raises ``ValueError``."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"not a Python expression: {err.msg}") from None
    return _arithmetic(tree.body, {})


def _number(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > _MAX_MAGNITUDE:
        raise ValueError(f"value {value!r} beyond ±{_MAX_MAGNITUDE:g}")
    return value


def _arithmetic(node: ast.AST, names: Dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _number(node.value)
    if isinstance(node, (ast.List, ast.Tuple)):
        if len(node.elts) > _MAX_ITEMS:
            raise ValueError(f"more than {_MAX_ITEMS} elements")
        items = [_arithmetic(e, names) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_arithmetic(node.operand, names))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _arithmetic(node.left, names), _arithmetic(node.right, names)
        if not all(isinstance(v, (int, float)) for v in (left, right)):
            raise ValueError("arithmetic on a list or tuple")
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right!r} beyond ±{_MAX_EXPONENT}")
        try:
            return _number(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
    if isinstance(node, ast.ListComp):
        results: List[Any] = []

        def expand(generators: Sequence[ast.comprehension], bound: Dict[str, Any]) -> None:
            if not generators:
                if len(results) >= _MAX_ITEMS:
                    raise ValueError(f"more than {_MAX_ITEMS} elements")
                results.append(_arithmetic(node.elt, bound))
                return
            first = generators[0]
            if first.ifs or first.is_async or not isinstance(first.target, ast.Name):
                raise ValueError("only 'for <name> in <list>' comprehensions")
            iterable = _arithmetic(first.iter, bound)
            if not isinstance(iterable, (list, tuple)):
                raise ValueError("a comprehension must run over a list or tuple")
            for value in iterable:
                expand(generators[1:], {**bound, first.target.id: value})

        expand(node.generators, names)
        return results
    raise ValueError(f"{type(node).__name__} is not allowed (numbers, arithmetic, lists and list "
                     "comprehensions only)")


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus the arithmetic-only ``!!python/object/apply:eval`` of detectron2's configs."""


def _construct_arithmetic(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    args = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else None
    if not args or len(args) != 1 or not isinstance(args[0], str):
        raise yaml.constructor.ConstructorError(
            None, None, "!!python/object/apply:eval takes one expression string here", node.start_mark)
    try:
        return arithmetic_value(args[0])
    except ValueError as err:
        raise yaml.constructor.ConstructorError(
            None, None, f"!!python/object/apply:eval {args[0]!r} is not plain arithmetic ({err})",
            node.start_mark) from None


_ConfigLoader.add_constructor("tag:yaml.org,2002:python/object/apply:eval", _construct_arithmetic)


def _describe_chain(chain: Sequence[str], path: str) -> str:
    return " -> ".join(list(chain) + [path])


def _resolve_base(base: Any, including_file: str) -> str:
    if not isinstance(base, str) or not base:
        raise ConfigFileError(f"{including_file}: {BASE_KEY} must be a file name or a list of file names, "
                              f"found {base!r}")
    if _URL.match(base):
        raise ConfigFileError(
            f"{including_file}: {BASE_KEY} {base!r} is a URL; only local files are read as configs "
            "(download the file, check it, and name the local copy)")
    base = os.path.expanduser(base)
    if not os.path.isabs(base):
        base = os.path.join(os.path.dirname(including_file), base)
    return base


def _read_one(path: str) -> Dict[str, Any]:
    """``yaml.safe_load`` of one file; every way it can be unusable is an error naming it."""
    if _URL.match(path):
        raise ConfigFileError(f"config {path!r} is a URL; only local files are read as configs (download "
                              "the file, check it, and name the local copy)")
    if path.endswith(".py"):
        raise ConfigFileError(f"config file {path} is a Python file: configs are yaml files (detectron2's "
                              "LazyConfig .py files are not read by this front door)")
    if not os.path.isfile(path):
        raise ConfigFileError(f"config file {path} does not exist (or is not a file)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader; see _ConfigLoader)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigFileError(
            f"config file {path}{where}: {err.problem}; configs are read with yaml.safe_load only -- Python "
            "tags (!!python/...) could run code and are never honoured") from None
    except yaml.YAMLError as err:
        raise ConfigFileError(f"config file {path} is not valid yaml: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigFileError(f"config file {path} is not UTF-8 text (a yaml file was expected): "
                              f"{err}") from None
    if data is None:
        raise ConfigFileError(f"config file {path} is empty (no keys)")
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path}: the top level must be a mapping of keys (KEY: value), "
                              f"found {type(data).__name__} -- is it a config file?")
    return data


def _merge_into(src: Dict[str, Any], dst: Dict[str, Any], path: str) -> None:
    """Values of ``src`` override those of ``dst``, recursively for mappings."""
    for key, value in src.items():
        if isinstance(value, dict) and key in dst:
            if not isinstance(dst[key], dict):
                raise ConfigFileError(f"config file {path}: {key} is a mapping here but a value "
                                      f"({dst[key]!r}) in its {BASE_KEY}")
            _merge_into(value, dst[key], path)
        else:
            dst[key] = value


def _load(path: str, chain: List[str]) -> Dict[str, Any]:
    real = os.path.realpath(path)
    if real in (os.path.realpath(p) for p in chain):
        raise ConfigFileError(f"{BASE_KEY} cycle: {_describe_chain(chain, path)} (a config cannot include "
                              "itself)")
    data = _read_one(path)
    if BASE_KEY not in data:
        return data
    bases = data.pop(BASE_KEY)
    merged: Dict[str, Any] = {}
    for base in bases if isinstance(bases, list) else [bases]:
        _merge_into(_load(_resolve_base(base, path), chain + [path]), merged, path)
    _merge_into(data, merged, path)
    return merged


def load_yaml_with_base(filename: str, allow_unsafe: bool = False) -> Dict[str, Any]:
    """``filename`` and its ``_BASE_`` chain as one dict (later files override earlier ones), read with
    ``yaml.safe_load`` only; ``allow_unsafe`` is accepted for signature compatibility and ignored."""
    return _load(os.path.expanduser(os.fspath(filename)), [])


def patch_fvcore_config(module) -> None:
    """fvcore's ``CfgNode`` (detectron2's base class): the safe loader."""
    module.CfgNode.load_yaml_with_base = classmethod(
        lambda cls, filename, allow_unsafe=False: load_yaml_with_base(filename))


def patch_fastreid_config(module) -> None:
    """fastreid's ``CfgNode`` (a copy of fvcore's, with its own staticmethod loader): the safe loader."""
    module.CfgNode.load_yaml_with_base = staticmethod(load_yaml_with_base)


# ------------------------------------------------------------------------------------------- proposals
def load_proposals_into_dataset(dataset_dicts: List[Dict[str, Any]],
                                proposal_file: str) -> List[Dict[str, Any]]:
    """detectron2's contract: the pickled dict ``{"ids", "boxes", "objectness_logits"[, "bbox_mode"]}`` (or
    Detectron1's ``"indexes"`` / ``"scores"``) is matched to the records by ``image_id`` and each record gets
    ``proposal_boxes``, ``proposal_objectness_logits`` and ``proposal_bbox_mode``. The file is read by the
    restricted unpickler; a record without proposals is an error naming the file and the image id."""
    from detectron2.structures import BoxMode
    from detectron2.utils.file_io import PathManager

    from shared.engine.checkpoint import UnsafePickleError, safe_pickle_load

    logging.getLogger(__name__).info("Loading proposals from: %s", proposal_file)
    local = PathManager.get_local_path(proposal_file)
    try:
        proposals = safe_pickle_load(local)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"proposal file (DATASETS.PROPOSAL_FILES_*) {proposal_file}: {err}") from None
    if not isinstance(proposals, dict):
        raise ConfigFileError(f"proposal file {proposal_file}: expected a dict, found "
                              f"{type(proposals).__name__}")
    for old, new in (("indexes", "ids"), ("scores", "objectness_logits")):
        if old in proposals:
            proposals[new] = proposals.pop(old)
    missing = [k for k in ("ids", "boxes", "objectness_logits") if k not in proposals]
    if missing:
        raise ConfigFileError(f"proposal file {proposal_file}: missing key(s) {missing}")
    wanted = {str(record["image_id"]) for record in dataset_dicts}
    position = {str(i): n for n, i in enumerate(proposals["ids"]) if str(i) in wanted}
    mode = BoxMode(proposals["bbox_mode"]) if "bbox_mode" in proposals else BoxMode.XYXY_ABS
    for record in dataset_dicts:
        key = str(record["image_id"])
        if key not in position:
            raise ConfigFileError(f"proposal file {proposal_file} has no proposals for image_id {key}")
        n = position[key]
        logits = proposals["objectness_logits"][n]
        order = logits.argsort()[::-1]  # highest objectness first, as detectron2 sorts them
        record["proposal_boxes"] = proposals["boxes"][n][order]
        record["proposal_objectness_logits"] = logits[order]
        record["proposal_bbox_mode"] = mode
    return dataset_dicts


def patch_proposal_loader(module) -> None:
    """``detectron2.data.build.load_proposals_into_dataset`` (called by ``get_detection_dataset_dicts``)."""
    module.load_proposals_into_dataset = load_proposals_into_dataset


# ------------------------------------------------------------------------------------- prediction files
def patch_evaluator_writes(module) -> None:
    """detectron2's COCO / LVIS evaluators write ``instances_predictions.pth`` and ``*_results.json``
    through their module's ``PathManager``: route its write modes through
    :func:`shared.atomic_io.atomic_open`, so a failed write keeps the previous file whole."""
    from shared.atomic_io import AtomicWritesPathManager

    if not isinstance(module.PathManager, AtomicWritesPathManager):
        module.PathManager = AtomicWritesPathManager(module.PathManager)
