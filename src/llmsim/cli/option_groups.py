"""Sets of options declared once and taken by several commands.

An option group is a frozen dataclass whose fields are typer options (an ``Annotated`` type
with a ``typer.Option``, and a default). :func:`takes` lets a command take the whole set as
one parameter::

    @dataclass(frozen=True)
    class MachineOptions:
        gpu_mem: GpuMemOpt = None
        cpu_mem: CpuMemOpt = None

    @app.command("solve")
    @takes(machine=MachineOptions)
    def solve_cmd(model: ModelOpt = None, machine: MachineOptions = MachineOptions()) -> None:
        ...  # machine.gpu_mem, machine.cpu_mem

typer sees the group's fields in the parameter's place (so ``--help`` lists them there, with
their own names, defaults and help); the command is called with the group built from them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def takes(**groups: type) -> Callable[[F], F]:
    """Decorate a command whose parameters named in ``groups`` are option groups (frozen
    dataclasses of typer options): typer sees each group's fields in its place."""
    for cls in groups.values():
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass of options")

    def decorate(func: F) -> F:
        hints = typing.get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
        params: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            if p.name not in groups:
                params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
                continue
            cls = groups[p.name]
            field_hints = typing.get_type_hints(cls, include_extras=True)
            params += [inspect.Parameter(f.name, p.kind, default=f.default,
                                         annotation=field_hints[f.name])
                       for f in dataclasses.fields(cls)]
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise TypeError(f"{func.__name__}: an option group repeats a parameter name")

        @functools.wraps(func)
        def command(**values: Any) -> Any:
            for name, cls in groups.items():
                values[name] = cls(**{f.name: values.pop(f.name)
                                      for f in dataclasses.fields(cls)})
            return func(**values)

        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=hints.get("return", None))
        command.__annotations__ = {p.name: p.annotation for p in params}
        return typing.cast(F, command)

    return decorate
