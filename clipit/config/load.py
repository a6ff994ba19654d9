"""Loading the config: TOML file, then `--set key=value` overrides, then validation.

Every failure is a `ConfigError` whose one line names the file (or `--set`), the dotted key and, when a
known key is close, the key that was probably meant.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import tomli_w
from pydantic import BaseModel, ValidationError

from clipit import atomic
from clipit.config.root import Config
from clipit.errors import ConfigError

DEFAULT_CONFIG_NAME = "clipit.toml"
RESOLVED_CONFIG_NAME = "config.resolved.toml"
PACKAGED_DIR = Path(__file__).resolve().parent.parent / "configs"  # package data: installed with the wheel


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), origins: Mapping[str, str] | None = None
) -> Config:
    """Read `path` (or ./clipit.toml when present), apply overrides, validate.

    `origins` names where an override key came from in error messages (a command's flag, e.g. `--n`);
    by default `--set KEY`.

    `path` may also be the name of a config shipped in the package (`tiny`, `clip-italian`) when no
    file of that name exists: those work wherever clipit is installed.
    """
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = DEFAULT_CONFIG_NAME
    if path is not None and not Path(path).exists():
        path = packaged_config(str(path)) or path
    raw: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    override_keys: set[str] = set()
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(raw, key, value, origin=f"--set {item}")
        override_keys.add(key)
    return validate_config(
        raw,
        source=str(path) if path is not None else "defaults",
        override_keys=override_keys,
        origins=origins,
    )


def packaged_names() -> list[str]:
    """Names of the configs shipped in the package (`clipit/configs/NAME.toml`)."""
    return sorted(p.stem for p in PACKAGED_DIR.glob("*.toml"))


def packaged_config(name: str) -> Path | None:
    """The shipped config called `name` (`tiny` or `tiny.toml`), or None."""
    stem = name.removesuffix(".toml")
    return PACKAGED_DIR / f"{stem}.toml" if stem in packaged_names() else None


def validate_config(
    raw: dict[str, Any],
    source: str = "config",
    override_keys: set[str] = frozenset(),
    origins: Mapping[str, str] | None = None,
) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source, override_keys, origins or {}) from None


def parse_override(item: str) -> tuple[str, Any]:
    """`train.batch_size=64` -> ('train.batch_size', 64). Values are TOML; bare words are strings."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {item!r} is not of the form section.key=value", "e.g. --set train.batch_size=64"
        )
    text = text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word such as a path: take it as a string
    return key, value


def save_resolved(config: Config, folder: str | Path) -> Path:
    """Write the resolved config into an output folder (atomically) and return its path."""
    target = Path(folder) / RESOLVED_CONFIG_NAME
    atomic.write_text(target, to_toml(config))
    return target


def to_toml(config: Config) -> str:
    """The whole resolved config as TOML (None values are left out: TOML has no null)."""
    return tomli_w.dumps(_drop_none(config.model_dump(mode="json")))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist",
            f"check the path, name a packaged config ({', '.join(packaged_names())}), or run `clipit init`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", "fix the syntax at that line") from None


def _set_dotted(raw: dict[str, Any], key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _list_item(node, part, origin)
            continue
        if part not in node and parts[i + 1].isdigit():
            # `train.phases.0.lr=...` edits the default list when the file does not set one
            node[part] = _default_at(parts[: i + 1])
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict | list):
            raise ConfigError(f"{origin}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = nxt
    if isinstance(node, list):
        index = _index(parts[-1], origin)
        if index >= len(node):
            raise ConfigError(f"{origin}: index {index} is past the end of the list ({len(node)} items)")
        node[index] = value
    else:
        node[parts[-1]] = value


def _default_at(parts: list[str]) -> Any:
    value: Any = Config().model_dump(mode="json")
    for part in parts:
        value = value[int(part)] if isinstance(value, list) else value.get(part, {})
    return _drop_none(value)


def _list_item(node: list, part: str, origin: str) -> Any:
    index = _index(part, origin)
    if index >= len(node):
        raise ConfigError(
            f"{origin}: index {index} is past the end of the list ({len(node)} items)",
            "set the whole list in the config file to add items",
        )
    return node[index]


def _index(part: str, origin: str) -> int:
    if not part.isdigit():
        raise ConfigError(f"{origin}: '{part}' must be a list index (0, 1, ...)")
    return int(part)


def _explain(
    exc: ValidationError, source: str, override_keys: set[str], origins: Mapping[str, str]
) -> ConfigError:
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc)
    from_set = [k for k in override_keys if k == key or k.startswith(key + ".") or key.startswith(k + ".")]
    where = (origins.get(from_set[0]) or f"--set {from_set[0]}") if from_set else source
    if error["type"] == "extra_forbidden":
        known = _field_names(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f"did you mean '{'.'.join([*loc[:-1], close[0]])}'?" if close else _known_hint(known)
        return ConfigError(f"{where}: unknown key '{key}'", hint)
    if error["type"] == "missing":
        return ConfigError(f"{where}: key '{key}' is required", "add it to the config")
    got = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    shown = f" (got {got!r})" if not isinstance(got, dict | list | BaseModel) else ""
    return ConfigError(f"{where}: key '{key}': {message}{shown}", "see docs/config.md for every key")


def _known_hint(known: list[str]) -> str:
    return f"known keys here: {', '.join(sorted(known))}" if known else "see docs/config.md"


def _field_names(loc: list[str]) -> list[str]:
    """The field names of the model found at `loc` inside Config (list indices skipped)."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None:
            return []
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None
