"""The process's open-file limit: every socket is a file descriptor.

Many Linux systems start services with a soft `RLIMIT_NOFILE` of 1024 and a much higher hard
limit. The ports' connection caps together need more than 1024, and when the process runs out,
`accept()` fails for every port at once (FastAGI, pops and `/healthz` go down together). So
the bridge raises its soft limit to what the caps need, as far as the hard limit allows.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def raise_open_files_limit(needed: int) -> int:
    """Raise the soft limit towards `needed` (never lowers it); the limit now in force.

    Logs a warning when the hard limit is too low for the configured connection caps.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError) as exc:
                log.warning("cannot raise the open-file limit to %d: %s", target, exc)
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit %d is below the %d the connection caps need; lower"
            " [http] max_connections, [pops] max_connections, [agi] max_sessions or raise"
            " the limit (ulimit -n, LimitNOFILE=)",
            soft,
            needed,
        )
    return int(soft)
