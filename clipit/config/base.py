"""The base of every config section: strict, immutable pydantic models.

Strict means an unknown key is an error (`extra="forbid"`), a value of the wrong type is never coerced
(`batch_size = "64"` or `export = 1` is an error, not 64 or true) and a float must be finite (`inf` and
`nan` are errors). Two conversions stay, because TOML cannot say otherwise: an integer where a float is
meant (`lr = 1` is 1.0), and a string where a path is meant. An empty string is never a path: `Path("")`
is the current folder, and an output folder there would mix a run's files with whatever the folder holds.
Immutable means no stage can change the config another stage sees.
"""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        protected_namespaces=(),
        strict=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _text_to_paths(cls, value: Any, info: ValidationInfo) -> Any:
        # Strict mode takes only Path objects for a Path, but TOML (and `--set`) can only give text.
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if _takes(annotation, Path):
            if isinstance(value, str):
                return _non_empty_path(value)
            if value is not None and not isinstance(value, Path):
                raise ValueError("must be a path, written as a string")
        elif _takes(annotation, list[Path]) and isinstance(value, list):
            if not all(isinstance(item, str | Path) for item in value):
                raise ValueError("must be a list of paths, each written as a string")
            return [_non_empty_path(item) if isinstance(item, str) else item for item in value]
        return value


def _non_empty_path(text: str) -> Path:
    if not text.strip():
        raise ValueError(
            'an empty path is not allowed: give a path ("." for the current folder), or remove the key'
        )
    return Path(text)


def _takes(annotation: Any, kind: Any) -> bool:
    """Whether `annotation` is `kind` or a union with it (`Path | None` takes Path)."""
    return annotation == kind or (
        get_origin(annotation) in (Union, UnionType) and kind in get_args(annotation)
    )
