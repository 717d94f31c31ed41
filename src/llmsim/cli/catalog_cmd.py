"""``llmsim catalog list|show``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from llmsim import catalog
from llmsim.cli.options import Format, FormatOpt, OutOpt
from llmsim.errors import UnknownNameError

app = typer.Typer(help="List and show hardware, hosts, clusters and models.",
                  no_args_is_help=True)


class Kind(str, Enum):
    hardware = "hardware"
    models = "models"
    clusters = "clusters"
    hosts = "hosts"


@app.command("list")
def list_cmd(
    kind: Annotated[Kind | None, typer.Argument(help="What to list (default: all).")] = None,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """List catalog entries."""
    from llmsim.report.catalog import write_list

    write_list([k.value for k in ([kind] if kind else list(Kind))], fmt, out)


@app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="A model, hardware, cluster or host name.")],
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Show one entry (models include num_params and num_active_params)."""
    from llmsim.report.catalog import write_entry

    write_entry(catalog_entry(name), fmt, out)


def catalog_entry(name: str) -> dict[str, Any]:
    """The entry named ``name`` with its ``kind`` first: a model (its summary, with parameter
    counts), a hardware part, a host or a cluster preset; else a did-you-mean over them all."""
    for getter, kind in ((catalog.get_model, "model"), (catalog.get_hardware, "hardware"),
                         (catalog.get_host, "host")):
        try:
            obj = getter(name)
        except UnknownNameError:
            continue
        return ({"kind": "model", **obj.summary()} if kind == "model"
                else {"kind": kind, **obj.model_dump(mode="json")})
    try:
        return {"kind": "cluster", **catalog.loader.get_cluster_spec(name).model_dump(mode="json")}
    except UnknownNameError:
        known = ([e["alias"] for e in catalog.list_models()]
                 + [h.name for h in catalog.list_hardware()]
                 + [c.name for c in catalog.list_clusters()]
                 + [h.name for h in catalog.list_hosts()])
        raise UnknownNameError("catalog entry", name, known) from None
