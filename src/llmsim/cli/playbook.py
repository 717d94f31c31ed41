"""What the playbook commands (``large-ep evaluate``, ``afd simulate``) price: a layer-template
scenario file (``catalog/layer_templates.py``: its model and hardware) or ``-m MODEL -H HW``,
``--hardware`` given winning over the file's."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmsim.errors import ConfigError

ScenarioArg = Annotated[str | None, typer.Argument(
    help="Layer-template scenario YAML (hardware + ffn/moe/comm layer configs) or a shipped "
         "one's name (deepseek-v3-h800, deepseek-v3-h100); or give -m/-H.",
    show_default=False)]
SeqOpt = Annotated[int, typer.Option("--seq", min=1, help="Tokens per sequence (prefill length "
                                                          "and decode context).")]


def playbook_target(scenario: str | None, model: str | None, hardware: str | None
                    ) -> tuple[Any, Any]:
    """``(model, hardware)`` to price: the scenario's (``--hardware`` overrides its hardware)
    or the flags'. One-line ``ConfigError`` when neither names a model and a part."""
    if scenario is not None and model is not None:
        raise ConfigError("give a SCENARIO file or --model, not both")
    if scenario is not None:
        from llmsim.catalog.layer_templates import load_layer_template_scenario

        sc = load_layer_template_scenario(scenario)
        hw = hardware if hardware is not None else sc.hardware
        if hw is None:
            raise ConfigError(f"{scenario} names no hardware; add --hardware")
        return sc.model, hw
    if model is None or hardware is None:
        raise ConfigError("give a SCENARIO file, or --model and --hardware")
    return model, hardware
