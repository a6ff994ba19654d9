"""Render the config models as documentation: docs/config.md and the commented `clipit init` file.

Both are generated from the pydantic models (defaults and descriptions), so they cannot drift:
a test compares docs/config.md with `render_markdown()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import tomli_w
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from clipit.config.load import _model_of
from clipit.config.root import Config


def _walk(
    model: type[BaseModel], prefix: str = ""
) -> Iterator[tuple[str, str, FieldInfo | None, type[BaseModel] | None]]:
    """Yield (section, key, field, submodel); a section header comes as (section, '', None, model)."""
    scalars = []
    nested = []
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        is_list_of_models = sub is not None and "list" in str(field.annotation)
        if sub is not None and not is_list_of_models:
            nested.append((name, sub))
        else:
            scalars.append((name, field))
    # Arrays of tables go last: in TOML every key after `[[a.b]]` would belong to that table.
    scalars.sort(key=lambda item: _model_of(item[1].annotation) is not None)
    if prefix:
        yield prefix, "", None, model
    for name, field in scalars:
        yield prefix, name, field, None
    for name, sub in nested:
        yield from _walk(sub, f"{prefix}.{name}" if prefix else name)


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, list):
        return [
            v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else str(v)
            for v in value
        ]
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def _type_name(field: FieldInfo) -> str:
    text = str(field.annotation)
    for junk in ("typing.", "pathlib.", "<class '", "'>"):
        text = text.replace(junk, "")
    return text


def render_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `clipit/config/` by `make docs` (a test fails when this file is stale).",
        "Every key can be set in `clipit.toml` or with `--set section.key=value` (value in TOML syntax;",
        "a bare word is a string). Unknown keys and wrong types are errors (exit code 2): nothing is coerced",
        '(`"64"` is not 64, `1` is not `true`) except an integer where a float is meant; floats must be finite;',
        "sizes must agree (`image_size` a multiple of `patch_size`, heads dividing `hidden_size`, `max_text_length`",
        "within the text tower's positions) and `trainable` patterns must be valid regexes.",
        "Paths are relative to the folder you run `clipit` in.",
        "",
    ]
    for section, key, field, model in _walk(Config):
        if field is None:
            has_keys = any(
                _model_of(f.annotation) is None or "list" in str(f.annotation)
                for f in model.model_fields.values()
            )
            if not has_keys:
                continue
            doc = (model.__doc__ or "").strip().splitlines()
            lines += [f"## `[{section}]`", ""]
            if doc and not doc[0].startswith("!"):
                lines += [doc[0], ""]
            lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
            continue
        default = _default(field)
        shown = "—" if default is None else f"`{json.dumps(default, ensure_ascii=False)}`"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | `{_type_name(field)}` | {shown} | {description} |")
    return "\n".join(lines).replace("\n## ", "\n\n## ").strip() + "\n"


def render_commented_toml() -> str:
    """A complete clipit.toml with every key at its default and its meaning as a comment."""
    out = [
        "# clipit configuration. Every key is shown at its default; delete what you do not change.",
        "# Reference: docs/config.md. Override any key on the command line: --set section.key=value",
        "",
    ]
    for section, key, field, _model in _walk(Config):
        if field is None:
            out += ["", f"[{section}]"]
            continue
        default = _default(field)
        comment = f"# {field.description}" if field.description else ""
        if key == "phases":
            table: dict[str, Any] = {"phases": default}
            for part in reversed(section.split(".")):
                table = {part: table}
            out += ["", comment, *tomli_w.dumps(table).strip().splitlines()]
            continue
        if default == [] and _model_of(field.annotation) is not None:  # an array of tables, none by default
            out += ["", comment, f"# [[{section}.{key}]]  (see docs/training.md)"]
            continue
        if default is None:
            out.append(f"# {key} = ...  {comment}".rstrip())
        else:
            out.append(f"{tomli_w.dumps({key: default}).strip()}  {comment}".rstrip())
    return "\n".join(out).strip() + "\n"
