"""Shared pydantic plumbing for catalog specs: frozen, extra keys forbidden, unit parsing.

Spec files write human units in values whose *field names* carry the SI unit, e.g.
``memory_bytes: 80 GiB`` or ``memory_bandwidth_bytes_per_s: 3.35 TB/s``; the validators here
turn them into SI floats (principle 2: human units only at the edge, via ``units.py``).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from llmsim import units
from llmsim.errors import SpecError


def _bytes(v: Any) -> float:
    return units.parse_bytes(v)


def _bandwidth(v: Any) -> float:
    return units.parse_bandwidth(v)


def _flops(v: Any) -> float:
    return units.parse_flops(v)


def _time(v: Any) -> float:
    return units.parse_time(v)


Bytes = Annotated[float, BeforeValidator(_bytes)]
BytesPerS = Annotated[float, BeforeValidator(_bandwidth)]
FlopsPerS = Annotated[float, BeforeValidator(_flops)]
Seconds = Annotated[float, BeforeValidator(_time)]


class Spec(BaseModel):
    """Base of every catalog spec: immutable and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def validate_spec(cls: type[Spec], data: dict[str, Any], origin: str) -> Spec:
    """Validate ``data`` as ``cls``; turn pydantic errors into one readable SpecError line.

    Unknown keys get a did-you-mean against the model's fields.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                field = str(err["loc"][-1])
                owner = _owner_model(cls, err["loc"][:-1])
                close = difflib.get_close_matches(field, list(owner.model_fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown key {loc!r}{hint}")
            else:
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{loc}: {msg}" if loc else msg)
        raise SpecError(f"{origin}: " + "; ".join(problems)) from None


def _owner_model(cls: type[BaseModel], path: tuple) -> type[BaseModel]:
    """The (nested) pydantic model that owns the field at ``path`` (best effort)."""
    owner: type[BaseModel] = cls
    for part in path:
        field = owner.model_fields.get(str(part))
        if field is None:
            break
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nested = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if nested is None:
            break
        owner = nested
    return owner
