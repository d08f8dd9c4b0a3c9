"""YAML text -> validated Definition, with every problem reported at once and its line."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sweeper.definition._schema import PARAM_TYPES, Definition
from sweeper.errors import DefinitionError


@dataclass(frozen=True)
class LoadedDefinition:
    """A valid definition plus where it came from and its exact text (stored with the study)."""

    spec: Definition
    text: str
    path: Path | None

    @property
    def fingerprint(self) -> str:
        """A hash of the validated definition: equal for definitions that run the same study."""
        return fingerprint(self.spec)


def fingerprint(spec: Definition) -> str:
    """Hash of what makes two runs comparable trials of one study: task, objective, epochs,
    search space. Trial count, timeout, resources, sampler, pruner and probes may change."""
    core = {
        "task": spec.task,
        "task_args": spec.task_args,
        "objective": spec.objective.model_dump(exclude={"target"}),  # advice, not the study
        "epochs": spec.budget.epochs,
        "search": {k: v.model_dump() for k, v in spec.search.params().items()},
    }
    if spec.objectives:  # several objectives and their constraints; a study of one keeps the
        # hash it had before there were several
        core["objectives"] = [o.model_dump(exclude={"target"}) for o in spec.objectives]
    if spec.constraints:
        core["constraints"] = [c.model_dump() for c in spec.constraints]
    if spec.cost_metrics():  # how a cost is measured changes what its values mean
        core["costs"] = spec.costs.model_dump()
    if spec.stages:  # each stage's epochs and narrowing (its trial count may change, as the
        # budget's may); a study without stages keeps the hash it had before stages existed
        core["stages"] = [[st.epochs, st.narrow] for st in spec.stages]
    blob = json.dumps(core, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_definition(path: str | Path) -> LoadedDefinition:
    """Read and validate a study definition file. Raises DefinitionError listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(str(p), ["file not found; check the path"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DefinitionError(str(p), [f"cannot read the file: {e}"]) from None
    return LoadedDefinition(spec=parse_definition(text, source=str(p)), text=text, path=p)


class _Loader(yaml.SafeLoader):
    """YAML 1.2's core schema instead of PyYAML's YAML 1.1 one, so values read as written:
    `1e-3` is a number (1.1: a string), `yes`/`no`/`on`/`off` stay words (1.1: booleans),
    `010` is ten (1.1: octal eight), `1:30` is text (1.1: ninety, base 60)."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = str(loader.construct_scalar(node))
    if value.startswith(("0o", "0x")):
        return int(value, 0)
    return int(value, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_definition(text: str, source: str = "<definition>") -> Definition:
    """Validate a definition's YAML text; DefinitionError lists every problem with its place."""
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader, with YAML 1.2 rules
        lines, duplicates = _line_index(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise DefinitionError(source, [f"{where}YAML syntax error: {problem}"]) from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise DefinitionError(source, [f"must be a YAML mapping of sections, got {got}"])
    if duplicates:
        raise DefinitionError(source, duplicates)
    try:
        return Definition.model_validate(raw)
    except ValidationError as e:
        raise DefinitionError(source, _format_errors(e, lines)) from None


def _format_errors(err: ValidationError, lines: dict[tuple[str, ...], int]) -> list[str]:
    out = []
    for e in err.errors(include_url=False):
        loc = _clean_loc(e["loc"])
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tags = (e.get("ctx") or {}).get("expected_tags") or ", ".join(map(repr, PARAM_TYPES))
            msg = f"`type` must be one of {tags}"
        elif "input" in e and e["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg}, got {e['input']!r}"
        line = _line_of(loc, lines)
        where = ".".join(loc) if loc else "(top level)"
        out.append(f"{where}: {msg}" + (f"  (line {line})" if line else ""))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """Drop pydantic's union tags (`search.lr.float.low` -> `search.lr.low`)."""
    parts = [str(x) for x in loc]
    if len(parts) >= 3 and parts[0] == "search" and parts[2] in PARAM_TYPES:
        del parts[2]
    return tuple(parts)


def _line_index(text: str) -> tuple[dict[tuple[str, ...], int], list[str]]:
    """Map each key path in the YAML to its 1-based line, for error messages; and every key
    that appears twice in one mapping (YAML keeps the last one silently)."""
    index: dict[tuple[str, ...], int] = {}
    duplicates: list[str] = []

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                line = key.start_mark.line + 1
                if sub in index:
                    duplicates.append(
                        f"{'.'.join(sub)}: the key appears twice (lines {index[sub]} and "
                        f"{line}); keep one"
                    )
                    continue
                index[sub] = line
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*path, str(i))] = item.start_mark.line + 1
                walk(item, (*path, str(i)))

    root = yaml.compose(text, Loader=_Loader)
    if root is not None:
        walk(root, ())
    return index, duplicates


def _line_of(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None
