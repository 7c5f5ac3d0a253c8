"""Prometheus and Alertmanager for the local stack: their configs rendered from the templates under
deploy/prometheus and deploy/alertmanager, their processes, and a reload when a rendered config changed."""

from __future__ import annotations

import os
import re
import shutil
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from deploy.local.config import StackConfig, StackError
from deploy.local.processes import Part, ensure_many, reload, running_pid, snapshot, write_if_changed

MONITORING_TIMEOUT_S: Final = 60.0

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _render(template: Path, values: Mapping[str, str]) -> str:
    try:
        return string.Template(template.read_text(encoding="utf-8")).substitute(values)
    except (KeyError, ValueError) as exc:
        raise StackError(f"{template}: bad placeholder {exc}") from exc


def _render_rules(template: Path, values: Mapping[str, str]) -> str:
    """A rules file with its ${NAME} placeholders filled. Unlike the config templates, rules keep
    Prometheus's own template variables ($labels, $value) as they are: only ${NAME} is replaced,
    and a ${NAME} with no value is an error."""
    text = template.read_text(encoding="utf-8")
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(values))
    if unknown:
        raise StackError(f"{template}: unknown placeholder(s) {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def wallboard_url(cfg: StackConfig) -> str:
    """The wallboard base URL put into alert links: WALLBOARD_URL if set (a public address, for
    rules rendered for another deployment), else this stack's API URL."""
    return (os.environ.get("WALLBOARD_URL") or cfg.api_url).rstrip("/")


def render_configs(cfg: StackConfig, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Render deploy/prometheus/prometheus.yml.tmpl and deploy/alertmanager/alertmanager.yml.tmpl
    (templates with ${NAME} placeholders) into RUN_DIR/config, or `out_dir`, and the rule files of
    deploy/prometheus/rules into its rules/ folder (their ${WALLBOARD_URL} filled). Returns the
    paths of the two configs."""
    folder = cfg.config_dir if out_dir is None else out_dir
    rules_dir = folder / "rules"
    scorer_targets = ", ".join(f"'127.0.0.1:{p}'" for p in cfg.scorer_ports)
    prom = _render(
        cfg.repo / "deploy" / "prometheus" / "prometheus.yml.tmpl",
        {
            "INGEST_TARGET": f"127.0.0.1:{cfg.ingest_port}",
            "API_TARGET": f"127.0.0.1:{cfg.api_port}",
            "SCORER_TARGETS": scorer_targets,
            "ALERTMANAGER_TARGET": f"127.0.0.1:{cfg.alertmanager_port}",
            "PROMETHEUS_TARGET": f"127.0.0.1:{cfg.prometheus_port}",
            "RULES_GLOB": str(rules_dir / "*.yml"),
        },
    )
    am = _render(
        cfg.repo / "deploy" / "alertmanager" / "alertmanager.yml.tmpl",
        {"ALERT_WEBHOOK_URL": cfg.alert_webhook_url},
    )
    templates = sorted((cfg.repo / "deploy" / "prometheus" / "rules").glob("*.yml"))
    rule_values = {"WALLBOARD_URL": wallboard_url(cfg)}
    rendered = {t.name: _render_rules(t, rule_values) for t in templates}
    rules_dir.mkdir(parents=True, exist_ok=True)
    for stale in rules_dir.glob("*.yml"):
        if stale.name not in rendered:
            stale.unlink()
    for name, text in rendered.items():
        write_if_changed(rules_dir / name, text)
    prom_path = folder / "prometheus.yml"
    am_path = folder / "alertmanager.yml"
    write_if_changed(prom_path, prom)
    write_if_changed(am_path, am)
    return prom_path, am_path


def _rules_snapshot(cfg: StackConfig) -> str:
    folder = cfg.config_dir / "rules"
    return "\0".join(f"{p.name}\0{snapshot(p)}" for p in sorted(folder.glob("*.yml"))) if folder.is_dir() else ""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found: run `make system-deps`")
    return found


def _monitoring_part(name: str, binary: str, port: int, config: Path, storage: str, *flags: str) -> Part:
    """A Prometheus-style server on 127.0.0.1:`port`, healthy when /-/ready answers."""
    url = f"http://127.0.0.1:{port}"
    return Part(
        name=name,
        argv=(_binary(binary), f"--config.file={config}", storage, f"--web.listen-address=127.0.0.1:{port}", *flags),
        url=url,
        health_url=f"{url}/-/ready",
        ports=(port,),
        timeout_s=MONITORING_TIMEOUT_S,
    )


def prometheus_part(cfg: StackConfig) -> Part:
    storage = f"--storage.tsdb.path={cfg.run_dir / 'prometheus'}"
    return _monitoring_part(
        "prometheus", "prometheus", cfg.prometheus_port, cfg.config_dir / "prometheus.yml", storage,
        *(["--web.enable-lifecycle"] if cfg.prometheus_lifecycle else []),
        # A live floor: resend firing alerts every 5 s (default 1m), so a first notification
        # lost before Alertmanager was discovered is retried at once, not a minute later.
        "--rules.alert.resend-delay=5s",
    )


def alertmanager_part(cfg: StackConfig) -> Part:
    storage = f"--storage.path={cfg.run_dir / 'alertmanager'}"
    return _monitoring_part(
        "alertmanager", "prometheus-alertmanager", cfg.alertmanager_port, cfg.config_dir / "alertmanager.yml", storage,
        "--cluster.listen-address=",
    )


def start_monitoring(cfg: StackConfig, quiet: bool = False) -> None:
    prom_before = snapshot(cfg.config_dir / "prometheus.yml")
    am_before = snapshot(cfg.config_dir / "alertmanager.yml")
    rules_before = _rules_snapshot(cfg)
    prom_cfg, am_cfg = render_configs(cfg)
    (cfg.run_dir / "prometheus").mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "alertmanager").mkdir(parents=True, exist_ok=True)
    parts = [prometheus_part(cfg), alertmanager_part(cfg)]
    was_running = {p.name: running_pid(cfg, p.name) is not None for p in parts}
    ensure_many(cfg, parts, quiet)
    # A running Prometheus/Alertmanager picks up a changed rendered config without a restart.
    if was_running["prometheus"] and (snapshot(prom_cfg) != prom_before or _rules_snapshot(cfg) != rules_before):
        reload(cfg, "prometheus")
    if was_running["alertmanager"] and snapshot(am_cfg) != am_before:
        reload(cfg, "alertmanager")
