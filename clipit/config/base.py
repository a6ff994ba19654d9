"""The base of every config section: strict, immutable pydantic models.

Strict means an unknown key is an error (`extra="forbid"`) and a value of the wrong type is not coerced
silently (a string is never accepted where a number is meant). Immutable means no stage can change
the config another stage sees.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, protected_namespaces=())
