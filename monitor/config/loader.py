"""Load replyclock.yaml and its rules files, and report every problem at once.

``load_config`` returns a ``LoadedConfig`` or raises ``ConfigError`` carrying one
``FILE:LINE: key.path: message`` problem per mistake, across the config and every rules file.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from monitor.config.calendars import calendar_problems
from monitor.config.models import Config, RulesFile
from monitor.config.yamlsource import KeyPath, YamlDocument, load_yaml
from monitor.errors import ConfigError, ConfigProblem


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedConfig:
    """A validated config with the rules files it includes, in order."""

    path: Path
    config: Config
    rules: tuple[tuple[Path, RulesFile], ...]


def _field_model(annotation: Any, key: str | int) -> Any:
    """The type reached by indexing a field's annotation with ``key`` (list item, dict value)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _field_model(args[0], key)
    if origin in (list, tuple) and isinstance(key, int):
        return args[0] if args else None
    if origin is dict:
        return args[1] if len(args) == 2 else None
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _field_model(arg, key)
            if found is not None:
                return found
    return None


def _annotation_at(root: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> Any:
    """The annotation of what sits at ``loc``, found by walking the models along the data;
    None when the walk loses its way (a key the model does not have)."""
    model: Any = root
    node = data
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            if isinstance(node, Mapping) and part in node:
                name = _field_name(model, part)
                if name is None:
                    return None
                model = model.model_fields[name].annotation
                node = node[part]
            continue  # else a union tag in the location: it names the member, not a key
        model = _resolve_container(model, node, part)
        if model is None:
            return None
        node = node[part] if isinstance(node, (Mapping, list)) else None
    return model


def _field_name(model: type[BaseModel], key: Any) -> str | None:
    """The field a key of the data fills: its name, or the field whose alias it is."""
    for name, info in model.model_fields.items():
        if key == (info.alias or name):
            return name
    return None


def _allowed_keys(root: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the model at ``loc`` accepts."""
    model = _annotation_at(root, data, loc)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [info.alias or name for name, info in model.model_fields.items()]
    return None


def _holds_secret(annotation: Any) -> bool:
    """Whether a field's annotation is ``SecretStr`` (maybe optional or annotated)."""
    if annotation is SecretStr:
        return True
    return any(_holds_secret(arg) for arg in typing.get_args(annotation))


def _secret_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """The keys of every ``SecretStr`` field in ``model`` and the models inside it."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        if _holds_secret(info.annotation):
            names.add(info.alias or name)
        for inner in _models_in(info.annotation):
            names |= _secret_names(inner, seen)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names, directly or inside lists, dicts and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _is_secret(root: type[BaseModel], data: Any, loc: tuple[Any, ...], key: str) -> bool:
    """Whether the value at ``loc`` is a secret field; where the walk along the data loses its
    way, any key that is a secret somewhere in the models counts as one (fail closed)."""
    annotation = _annotation_at(root, data, loc)
    if annotation is None:
        return key in _secret_names(root)
    return _holds_secret(annotation)


def _resolve_container(annotation: Any, node: Any, part: Any) -> Any:
    """Step into a list/dict annotation; pick the union member a tagged union chose."""
    inner = _field_model(annotation, part)
    origin = typing.get_origin(inner)
    if origin is typing.Annotated:
        inner = typing.get_args(inner)[0]
        origin = typing.get_origin(inner)
    if origin in (typing.Union, types.UnionType):
        child = node[part] if isinstance(node, (list, Mapping)) else None
        tag = child.get("type") if isinstance(child, Mapping) else None
        for member in typing.get_args(inner):
            fields = getattr(member, "model_fields", {})
            if "type" in fields and tag in typing.get_args(fields["type"].annotation):
                return member
    return inner


def _data_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Drop the parts of a pydantic location that are not keys in the data (union tags)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, Mapping) and part in node:
            path.append(str(part))
            node = node[part]
        elif isinstance(node, Mapping) and node.get("type") == part:
            continue  # the member of a tagged union (sources[0].imap): not a key the user wrote
        elif last and isinstance(part, (str, int)) and not str(part).startswith("function-"):
            path.append(part)
        # else: a union member name or validator tag -- not part of the user's key path
    return tuple(path)


def _kind_of(value: Any) -> str:
    """A few words for the type of a YAML value, for messages that must not show the value."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (date, datetime)):
        return "a date"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    return f"a value of type {type(value).__name__}"


def _got(value: Any) -> str:
    """``got: 'x'`` for a scalar; only the kind for a list or mapping (it may hold a secret)."""
    if isinstance(value, (Mapping, list, tuple, set)):
        return f"got {_kind_of(value)}"
    return f"got: {value!r}"


def _secret_message(error: Mapping[str, Any], key: str) -> str:
    """What is wrong with a secret and how to fix it, without its value."""
    kind = error["type"]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        value = error.get("input")
        fix = (
            "write the secret as one quoted string"
            if isinstance(value, (Mapping, list, tuple, set))
            else "quote it in the YAML"
        )
        return (
            f"must be a string, got {_kind_of(value)} (value not shown: it is a secret); "
            f'{fix}, e.g. {key}: "..."'
        )
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{message} (value not shown: it is a secret)"


def _message(error: Mapping[str, Any], allowed: list[str] | None, key: str) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        text = "unknown key"
        if allowed:
            text += f", expected one of: {', '.join(sorted(allowed))}"
            close = difflib.get_close_matches(key, allowed, n=1)
            if close:
                text += f" (did you mean {close[0]!r}?)"
        return text
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in {"literal_error", "enum"}:
        return f"{message}, {_got(error.get('input'))}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{message}, {_got(error.get('input'))}"
    return message


def validation_problems(
    doc: YamlDocument, model: type[BaseModel], exc: ValidationError
) -> list[ConfigProblem]:
    """Turn a pydantic ValidationError into located problems, one per error."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _data_path(doc.data, loc)
        allowed = None
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, doc.data, loc[:-1])
        key = str(path[-1]) if path else ""
        if error["type"] not in {"extra_forbidden", "missing"} and _is_secret(
            model, doc.data, loc, key
        ):
            message = _secret_message(error, key)
        else:
            message = _message(error, allowed, key)
        # A missing key has no line of its own: line_of falls back to its parent mapping.
        problems.append(doc.problem(path, message))
    return problems


def validate_document(
    doc: YamlDocument, model: type[BaseModel], context: Mapping[str, Any]
) -> tuple[BaseModel | None, list[ConfigProblem]]:
    """Validate a parsed document against ``model``; return the model or the problems."""
    problems = list(doc.problems)
    if doc.data is None:
        return None, problems
    if not isinstance(doc.data, Mapping):
        problems.append(doc.problem((), "the file must be a YAML mapping of keys to values"))
        return None, problems
    try:
        value = model.model_validate(doc.data, context=dict(context))
    except ValidationError as exc:
        problems.extend(validation_problems(doc, model, exc))
        return None, problems
    return (value if not problems else None), problems


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate the config and its rules files; raise ConfigError listing every problem."""
    doc = load_yaml(path, environ)
    config, problems = validate_document(doc, Config, {"base_dir": path.parent})
    rules: list[tuple[Path, RulesFile]] = []
    rules_docs: list[YamlDocument] = []
    if isinstance(config, Config):
        for index, rules_path in enumerate(config.rules):
            if not rules_path.is_file():
                problems.append(
                    doc.problem(("rules", index), f"rules file {rules_path} does not exist")
                )
                continue
            rules_doc = load_yaml(rules_path, environ)
            parsed, rules_problems = validate_document(
                rules_doc, RulesFile, {"base_dir": rules_path.parent}
            )
            problems.extend(rules_problems)
            if isinstance(parsed, RulesFile):
                rules.append((rules_path, parsed))
                rules_docs.append(rules_doc)
                problems.extend(_check_rules(rules_doc, parsed))
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.file != str(path), p.file, p.line)))
    assert isinstance(config, Config)
    loaded = LoadedConfig(path=path, config=config, rules=tuple(rules))
    problems.extend(_cross_check(rules_docs, loaded))
    if problems:
        raise ConfigError(problems)
    return loaded


def _check_rules(doc: YamlDocument, rules: RulesFile) -> list[ConfigProblem]:
    """Checks within one rules file that the schema cannot express."""
    problems: list[ConfigProblem] = []
    for name, calendar in rules.calendars.items():
        problems.extend(calendar_problems(doc, ("calendars", name), calendar))
    return problems


def _cross_check(rules_docs: list[YamlDocument], loaded: LoadedConfig) -> list[ConfigProblem]:
    """Checks across files: policy names unique, calendars referenced by policies exist."""
    problems: list[ConfigProblem] = []
    calendars: set[str] = set()
    for _, rules in loaded.rules:
        calendars.update(rules.calendars)
    seen_policies: dict[str, Path] = {}
    for (rules_path, rules), rules_doc in zip(loaded.rules, rules_docs, strict=True):
        for index, policy in enumerate(rules.policies):
            if policy.name in seen_policies:
                problems.append(
                    rules_doc.problem(
                        ("policies", index, "name"),
                        f"policy name {policy.name!r} is already used in "
                        f"{seen_policies[policy.name]}; policy names must be unique",
                    )
                )
            seen_policies.setdefault(policy.name, rules_path)
            if policy.calendar not in calendars and policy.calendar != "24x7":
                known = ", ".join(sorted(calendars | {"24x7"}))
                problems.append(
                    rules_doc.problem(
                        ("policies", index, "calendar"),
                        f"unknown calendar {policy.calendar!r}; expected one of: {known}",
                    )
                )
    return problems
