"""Load a recipe config from YAML plus ``a.b=c`` overrides, with errors in the user's words.

pydantic does the validation; this module turns its errors into messages that name the file, the
line, the key, the bad value and the closest valid key.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tuneforge.errors import TuneforgeError, did_you_mean

M = TypeVar("M", bound=BaseModel)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3``, ``5e3`` as numbers (YAML 1.1 wants ``1.0e-3``), and
    rejects a key written twice in one mapping instead of silently keeping the last."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, tuple[int, str, Any]] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                first_line, first_text, first_key = seen[key]
                text = getattr(key_node, "value", key)
                if isinstance(text, str) and text != first_text:
                    # `{yes: a, 1: b}`: YAML reads yes as true, and true == 1 in Python: one key, not two
                    problem = (f'the keys "{first_text}" (line {first_line}) and "{text}" (line {line}) are one key '
                               f"once YAML reads them ({first_text} is read as {first_key!r}, {text} as {key!r}, "
                               f'and those are equal); quote them as text: "{first_text}": ..., "{text}": ...')
                else:
                    problem = f'the key "{key}" appears twice (lines {first_line} and {line}); keep one'
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen[key] = (line, getattr(key_node, "value", str(key)), key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def read_yaml(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """The mapping in ``path`` and its YAML node tree (for line numbers in error messages)."""
    if not path.exists():
        raise TuneforgeError(f"Config file {path.resolve()} does not exist. Check the path, or see "
                             "the shipped examples in configs/.")
    if not path.is_file():
        raise TuneforgeError(f"Config file {path.resolve()} is a folder; give the YAML file inside it.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TuneforgeError(f"{path}: not UTF-8 text (byte {exc.start}). Save the config as UTF-8.") from None
    try:
        data = parse_yaml(text)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TuneforgeError(f"{path}{where}: not valid YAML ({problem}). Fix it there; "
                             "keys and values are written as `key: value`.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TuneforgeError(f"{path}: the config must be a mapping of keys (name:, model:, data:, ...), "
                             f"but the file holds a {type(data).__name__}.")
    return data, node


# Sections that may be written as one string: `method: lora` is {name: lora}, `adversarial: fgm` {method: fgm}.
SHORTHANDS = {"method": "name", "adversarial": "method"}


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides; values are parsed as YAML (``3``, ``1e-3``, ``true``, ``[a, b]``)."""
    for item in overrides:
        if "=" not in item:
            raise TuneforgeError(f'Override "{item}" is not of the form key=value, e.g. '
                                 "train.learning_rate=1e-3 or method.name=lora.")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise TuneforgeError(f'Override "{item}" has an empty key.')
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parts = _path_keys(data, parts)
        target = data
        for part in parts[:-1]:
            nxt = target.get(part)
            if isinstance(nxt, str) and part in SHORTHANDS:  # `method: lora`, `adversarial: fgm`
                nxt = {SHORTHANDS[part]: nxt}
            if nxt is None:
                nxt = {}
            if not isinstance(nxt, dict):
                raise TuneforgeError(f'Override "{item}": "{part}" is a value, not a section.')
            target[part] = nxt
            target = nxt
        target[parts[-1]] = value
    return data


# Mappings keyed by config field paths, whose keys hold dots (`search.space.method.r=[4, 8]` sets the key
# "method.r"), and the fields of their values that an override may also reach (`...learning_rate.high=1e-2`).
PATH_KEYED = {("search", "space"): ("low", "high", "log", "step")}
SEARCH_SETTINGS = ("space", "trials", "sampler", "pruner", "startup_trials", "warmup_evals")


def _path_keys(data: dict[str, Any], parts: list[str]) -> list[str]:
    """The keys an override's dotted path walks through, where some keys have dots in them: a key the config
    already has (``search.space.train.learning_rate.high``), a new one in a mapping keyed by field paths, or a path
    written straight into search: (its shorthand for search.space)."""
    keys: list[str] = []
    target: Any = data
    i = 0
    while i < len(parts):
        found = None
        if isinstance(target, dict):  # the longest existing key, dots and all
            found = next((j for j in range(len(parts), i + 1, -1) if ".".join(parts[i:j]) in target), None)
        tail = PATH_KEYED.get(tuple(keys))
        if found is None and len(parts) - i > 1:
            if tail is not None:  # a new field path in search.space
                found = len(parts) - 1 if parts[-1] in tail and len(parts) - i > 2 else len(parts)
            elif keys == ["search"] and parts[i] not in SEARCH_SETTINGS:  # search: {method.r: [4, 8]}
                found = len(parts) - 1 if parts[-1] in PATH_KEYED[("search", "space")] and len(parts) - i > 2 \
                    else len(parts)
        end = found if found is not None else i + 1
        key = ".".join(parts[i:end])
        keys.append(key)
        target = target.get(key) if isinstance(target, dict) else None
        i = end
    return keys


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest key of ``loc`` that exists in the YAML node tree."""
    line = None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == part:
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            break
    return line


def _walk(model: type[BaseModel], raw_loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """Follow pydantic's error location through the schema.

    Returns the location as the user wrote it and the config section that holds its last key.
    Discriminated unions put the chosen member's tag into pydantic's location (``method.lora.rr``); the
    tag picks the member whose ``name`` field defaults to it and is dropped from the user's location.
    """
    user: list[Any] = []
    current: type[BaseModel] | None = model
    section: type[BaseModel] | None = model
    parts = list(raw_loc)
    while parts:
        part = parts.pop(0)
        user.append(part)
        section = current
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            user.extend(parts)
            return tuple(user), (section if not parts else None)
        members = _models_in(field.annotation)
        if len(members) > 1 and parts:
            tag = parts.pop(0)
            current = next((m for m in members if "name" in m.model_fields
                            and m.model_fields["name"].default == tag), None)
        else:
            current = members[0] if members else None
    return tuple(user), section


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    return found


_UNION_MEMBER = re.compile(r"^[\w-]+\[.*\]$")


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str,
                            node: yaml.Node | None, overrides: list[str] | None = None) -> TuneforgeError:
    problems = []
    for err in exc.errors():
        # pydantic names the member of a plain union it tried (`function-after[_ordered(), Range]`, `list[any]`)
        raw_loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p)))
        loc, section = _walk(model, raw_loc)
        dotted = ".".join(str(p) for p in loc)
        override = _override_for(loc, overrides or [], unknown=err["type"] == "extra_forbidden")
        line = None if override else _line_of(node, loc)
        where = f'override "{override}": ' if override else (f"line {line}, " if line else "")
        if err["type"] == "extra_forbidden":
            valid = list(section.model_fields) if section is not None else []
            hint = did_you_mean(str(loc[-1]), valid) if valid else ""
            problems.append(f'{where}unknown key "{dotted}".{hint}')
        elif err["type"] == "missing":
            problems.append(f'{where}"{dotted}" is required but missing.')
        else:
            value = err.get("input")
            shown = "a mapping" if isinstance(value, dict) else repr(value)
            msg = err["msg"].removeprefix("Value error, ")
            msg = msg[0].lower() + msg[1:]
            if not msg.endswith((".", "?")):
                msg += "."
            if override:
                msg += _override_hint(override, err["type"], value)
            if err["type"] == "model_type" and not isinstance(value, dict) and section is not None:
                # `data: airline-sentiment`, `tracking=tensorboard`: a single value where a section goes
                sub = _models_in(section.model_fields[str(loc[-1])].annotation) if str(loc[-1]) in \
                    section.model_fields else []
                if sub:
                    keys = list(sub[0].model_fields)
                    key, example = (str(value), "true") if str(value) in keys else (keys[0], value)
                    msg = (f"a section, not a single value; give its keys ({', '.join(keys[:6])}"
                           f"{', ...' if len(keys) > 6 else ''}) under it, e.g. {dotted}.{key}={example} on the "
                           f"command line or `{dotted}: {{{key}: {example}}}` in the config "
                           f"(`tuneforge config show` lists them).")
            # A check over the whole config (e.g. two sections that exclude each other) has no key to name.
            problems.append(f'{where}"{dotted}" = {shown}: {msg}' if dotted else f"{where}{msg}")
    return TuneforgeError(f"{source}: the config has {len(problems)} problem(s); fix them and run again:",
                          problems)


def _override_hint(override: str, error_type: str, value: Any) -> str:
    """Why an override's value is not what the user meant: YAML read it as another type, could not read it, or
    there is no value after the '='."""
    key, raw = (part.strip() for part in override.split("=", 1))
    if not raw:
        return (f' "{key}=" gives no value, which reads as null; write one after the "=" ({key}=VALUE), or leave '
                "the override out to keep the config's value.")
    if isinstance(value, str) and value.strip() == raw:
        try:
            parse_yaml(raw)
        except yaml.YAMLError as exc:  # apply_overrides kept the text as it was written
            problem = (getattr(exc, "problem", None) or str(exc)).split("\n")[0]
            return f" The value {raw} is not valid YAML ({problem}), so it was kept as text."
    if error_type == "string_type" and value is not None and not isinstance(value, str):
        # YAML reads `{question}` as a mapping, `[x]` as a list, `yes` as true, `2024` as a number: the user meant text
        kind = ("a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list)
                else "a boolean" if isinstance(value, bool) else "a number")
        return (f" YAML reads {raw} as {kind}; quote the text: {key}=\"'{raw}'\" (in a shell), or write it quoted "
                f"in the config file: '{raw}'.")
    return ""


def _override_for(loc: tuple[Any, ...], overrides: list[str], unknown: bool = False) -> str | None:
    """The last override that set ``loc`` (or a section above it), if any. For an ``unknown`` key, also one
    that set a key below it: ``trian.epochs=1`` created the unknown section ``trian``."""
    dotted = ".".join(str(p) for p in loc)
    found = None
    for item in overrides:
        key = ".".join(p for p in item.split("=", 1)[0].strip().split(".") if p)
        if dotted == key or dotted.startswith(key + ".") or (unknown and key.startswith(dotted + ".")):
            found = item
    return found


def load_config(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict[str, Any] | None = None) -> M:
    """Validate a config from a YAML file and/or a mapping, then apply overrides."""
    if isinstance(overrides, str):  # list("train.epochs=1") would be overrides "t", "r", ...
        raise TuneforgeError(f'overrides must be a list of "key=value" strings; got the string "{overrides}". '
                             f'Write ["{overrides}"].')
    if path is not None and not isinstance(path, (str, Path)):
        raise TuneforgeError(f"the config must be a YAML path, a mapping or a {model.__name__}; got "
                             f"{type(path).__name__} {path!r:.60}.")
    node = None
    source = "config"
    merged: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        merged, node = read_yaml(path)
        source = str(path)
    if data is not None:
        merged = {**merged, **copy.deepcopy(data)}  # overrides edit nested sections: never the caller's
    merged = apply_overrides(merged, list(overrides or []))
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise format_validation_error(exc, model, source, node, list(overrides or [])) from None


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML, loadable again with :func:`load_config`."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
