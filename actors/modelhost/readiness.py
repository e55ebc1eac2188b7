"""A modelhost is ready when it serves every model it should: the orchestrator's meaning.

"Should" is the registry's view: every model marked to be served (not unloaded) that this
host's --models lets it serve. A host serves a model once its default version is loaded and
warmed and the host has subscribed (service.py): that is `served`. A model that no host can
load keeps the hosts unready, and the reason names it, so an operator sees it in
`kubectl describe pod`; unloading the model makes them ready again. A host that has
stalled (stall.py: runs pending, none finishing) is not ready until a run finishes.
"""

from __future__ import annotations

from actors.modelhost.service import ModelhostService

MAX_NAMED = 5
"""Models named in a reason; a probe's answer stays one short line."""


def unready_reason(host: ModelhostService) -> str | None:
    """None if the host is ready to serve, else why not: stalled, or models not loaded yet."""
    if host.stall.stalled:
        return host.stall.reason()
    return missing_models(host)


def missing_models(host: ModelhostService) -> str | None:
    """None if every model this host should serve is served, else which are not yet."""
    if host.view is None:
        return "registry not open yet"
    missing = sorted(
        name
        for name, record in host.view.records.items()
        if record.serving and host.serves(name) and name not in host.served
    )
    if not missing:
        return None
    named = ", ".join(missing[:MAX_NAMED])
    more = f" and {len(missing) - MAX_NAMED} more" if len(missing) > MAX_NAMED else ""
    return f"models not loaded yet: {named}{more}"
