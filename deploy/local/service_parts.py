"""Floorwatch's own processes in the local stack: ingest, SCORER_WORKERS scorer workers and the API,
each with its /healthz as its health check and the environment of config.service_env."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from deploy.local.config import StackConfig, service_env
from deploy.local.processes import Part, ensure_many, recorded_names, stop_names

SERVICE_TIMEOUT_S: Final = 90.0


def _service_part(name: str, module: str, port: int, url: str, env: Mapping[str, str], python: str) -> Part:
    """`python -m services.<module>` on 127.0.0.1:`port`, healthy when /healthz answers."""
    return Part(
        name=name,
        argv=(python, "-m", f"services.{module}"),
        url=url,
        health_url=f"http://127.0.0.1:{port}/healthz",
        ports=(port,),
        timeout_s=SERVICE_TIMEOUT_S,
        env=env,
    )


def service_parts(cfg: StackConfig) -> list[Part]:
    env, py = service_env(cfg), cfg.python
    scorers = [
        _service_part(f"scorer-{i}", "scorer", port, f"http://127.0.0.1:{port}/metrics",
                      {**env, "SCORER_WORKER_INDEX": str(i), "SCORER_METRICS_PORT": str(port)}, py)
        for i, port in enumerate(cfg.scorer_ports)
    ]
    return [
        _service_part("ingest", "ingest", cfg.ingest_port, cfg.ingest_url, env, py),
        *scorers,
        _service_part("api", "api", cfg.api_port, cfg.api_url, env, py),
    ]


def start_services(cfg: StackConfig, quiet: bool = False) -> None:
    parts = service_parts(cfg)
    wanted = {p.name for p in parts}
    extra = [n for n in recorded_names(cfg) if n.startswith("scorer-") and n not in wanted]
    if extra:  # SCORER_WORKERS went down since the last `up`
        stop_names(cfg, extra)
    ensure_many(cfg, parts, quiet)
