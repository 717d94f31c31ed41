"""Shared pydantic plumbing for catalog specs: frozen, extra keys forbidden, unit parsing.

Spec files write human units in values whose *field names* carry the SI unit, e.g.
``memory_bytes: 80 GiB`` or ``memory_bandwidth_bytes_per_s: 3.35 TB/s``; the validators here
turn them into SI floats (principle 2: human units only at the edge, via ``units.py``).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

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
    """Base of every catalog spec: immutable and strict about unknown keys.

    Numbers are not booleans: ``tp: true`` (YAML) or ``batch=True`` is rejected, not read as 1
    (pydantic's lax mode would); whole floats such as ``tp: 1.0`` are read as the integer.
    Building a spec with bad values raises :class:`SpecError` (one line), not pydantic's
    ``ValidationError``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise spec_error(type(self), exc) from None

    # pydantic validates nested specs without calling __init__ as long as it takes this for
    # its own (the marker its BaseModel.__init__ carries): their errors keep dotted locations
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                key = name if name in data else field.alias
                value = data.get(key) if key is not None else None
                kind = _numeric(field.annotation)
                if kind == "plain" and any(isinstance(m, BeforeValidator)
                                           for m in field.metadata):
                    kind = "units"  # Bytes, Seconds, ...: parsed from text like "80 GiB"
                if kind and (isinstance(value, bool) or (kind == "plain"
                                                        and isinstance(value, str))):
                    raise ValueError(f"{key}: expected a number, got {value!r}")
        return data


def _numeric(annotation: Any) -> str:
    """``"plain"`` for an int / float field (or an optional one, or a union with them and
    without bool or str), ``"units"`` for a number parsed from text with units (``Bytes``,
    ``Seconds``, ...), ``""`` otherwise."""
    if annotation in (int, float):
        return "plain"
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return "units" if _numeric(typing.get_args(annotation)[0]) else ""
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if bool in args:
            return ""
        kinds = {_numeric(a) for a in args} - {""}
        if not kinds:
            return ""
        return "units" if "units" in kinds or str in args else "plain"
    return ""


def spec_error(cls: type[BaseModel], exc: ValidationError, origin: str | None = None
               ) -> SpecError:
    """Pydantic's errors as one readable :class:`SpecError` line (unknown keys with a
    did-you-mean against the model's fields)."""
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
            msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
            problems.append(f"{loc}: {msg}" if loc else msg)
    return SpecError((f"{origin}: " if origin else "") + "; ".join(problems))


def validate_spec(cls: type[Spec], data: dict[str, Any], origin: str) -> Spec:
    """Validate ``data`` as ``cls``; turn pydantic errors into one readable SpecError line.

    Unknown keys get a did-you-mean against the model's fields.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise spec_error(cls, exc, origin) from None


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
