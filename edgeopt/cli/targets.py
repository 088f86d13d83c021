"""`edgeopt targets` and `edgeopt targets setup`: list targets, probe them, prepare one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import _console, targets_app


@targets_app.callback(invoke_without_command=True)
def targets(ctx: typer.Context,
            check: Annotated[bool, typer.Option("--check/--no-check", help="Probe reachability (SSH, GPU).")] = True,
            ) -> None:
    """List the targets edgeopt knows and whether each is reachable now."""
    if ctx.invoked_subcommand is not None:
        return
    from concurrent.futures import ThreadPoolExecutor

    from rich.table import Table

    from edgeopt.bench.devices.reachability import reachability
    from edgeopt.bench.targets import available, load_target

    found = {name: load_target(path) for name, path in available().items()}
    with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:  # SSH probes wait on the network: together
        reach = {n: pool.submit(reachability, t) for n, t in found.items()} if check else {}
    t = Table(title="targets")
    for col in ("name", "arch", "device", "threads", "connection", "reachable", "why", "file"):
        t.add_column(col)
    for name, tg in found.items():
        ok, why = reach[name].result() if check else ("?", "not checked")
        conn = tg.connection.kind + (f" {tg.connection.user + '@' if tg.connection.user else ''}{tg.connection.host}"
                                     if tg.connection.kind == "ssh" else "")
        t.add_row(name, tg.arch, tg.device, str(tg.threads), conn, f"[green]{ok}[/]" if ok == "yes" else ok,
                  why.split(" — ")[0], _short_path(tg.source))
    _console().print(t)


def _short_path(p: Path | None) -> str:
    if p is None:
        return "-"
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


@targets_app.command("setup")
def targets_setup(name: Annotated[str, typer.Argument(help="Target to prepare (rpi4-emulated builds its sysroot).")],
                  force: Annotated[bool, typer.Option(help="Rebuild even if it is already there.")] = False) -> None:
    """Prepare a target once: for an emulated one, build the aarch64 sysroot in the cache folder."""
    from edgeopt.bench.devices import sysroot
    from edgeopt.bench.devices.reachability import reachability
    from edgeopt.bench.targets import load_target
    from edgeopt.errors import UsageError

    tg = load_target(name)
    if tg.connection.kind != "qemu":
        ok, why = reachability(tg)
        if ok != "yes":
            raise UsageError(f"target {tg.name} is not reachable: {why}",
                             "edit its connection (or the EDGEOPT_* variables in its file) and run `edgeopt targets`")
        _console().print(f"{tg.name}: nothing to set up; reachable ({why})")
        return
    console = _console(stderr=True)
    info = sysroot.setup(sysroot.sysroot_dir(tg), force=force, progress=lambda msg: console.print(msg))
    dev = info.get("device", {})
    _console().print(f"{tg.name}: sysroot {info['root']} — {info.get('qemu')}, Python {dev.get('python')}, "
                     f"numpy {dev.get('numpy')}, ai-edge-litert {dev.get('ai_edge_litert')}, "
                     f"onnxruntime {dev.get('onnxruntime')}")


# --- tune: the search alone (training engine) ------------------------------------------------------------------
