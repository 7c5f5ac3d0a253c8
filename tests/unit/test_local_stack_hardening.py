"""The local stack (deploy/local/) keeps its logs bounded and Prometheus' lifecycle API off (issue 16)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deploy.local import monitoring, processes
from deploy.local.config import StackConfig, ensure_dotenv


def test_a_parts_log_is_rotated_by_size(tmp_path: Path) -> None:
    env = {"RUN_DIR": str(tmp_path), "LOG_MAX_BYTES": "2000", "LOG_BACKUPS": "2"}
    cfg = StackConfig.from_env(env, env_file=tmp_path / "none")
    line = "x" * 50
    part = processes.Part(
        name="chatty", argv=(sys.executable, "-c", f"for i in range(500): print({line!r}, i)"),
        url="-", health_url=None, ports=(), timeout_s=5,
    )
    pid = processes.spawn(cfg, part)
    pump = processes._pumps[-1]  # this part's (the session's stack has pumps of its own, alive as long as their parts)
    assert processes._children[pid].wait(timeout=60) == 0
    pump.wait(timeout=60)  # it ends once its part closed its output
    logs = sorted(p.name for p in cfg.logs_dir.iterdir())
    assert logs == ["chatty.log", "chatty.log.1", "chatty.log.2"]
    for name in logs:
        text = (cfg.logs_dir / name).read_text()
        assert len(text.encode()) <= 2_000
        assert all(ln.startswith(("x", "===")) for ln in text.splitlines()), "a line was split across files"
    assert (cfg.logs_dir / "chatty.log").read_text().splitlines()[-1] == f"{line} 499"


def test_prometheus_lifecycle_api_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(monitoring, "_binary", lambda name: name)
    env = {"RUN_DIR": str(tmp_path)}
    off = monitoring.prometheus_part(StackConfig.from_env(env, env_file=tmp_path / "none"))
    assert "--web.enable-lifecycle" not in off.argv
    on = monitoring.prometheus_part(StackConfig.from_env({**env, "PROMETHEUS_LIFECYCLE": "1"},
                                                          env_file=tmp_path / "none"))
    assert "--web.enable-lifecycle" in on.argv


def test_generated_secrets_include_the_agent_id_salt(tmp_path: Path) -> None:
    cfg = StackConfig(run_dir=tmp_path, env_file=tmp_path / ".env")
    assert ensure_dotenv(cfg)
    names = {ln.split("=", 1)[0] for ln in (tmp_path / ".env").read_text().splitlines() if "=" in ln}
    assert "AGENT_ID_SALT" in names and "API_READ_TOKEN" not in names  # the read token stays opt-in
