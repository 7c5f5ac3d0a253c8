"""The local stack's defaults are services/core/config.py's, and .env.example documents those very values."""

from __future__ import annotations

from pathlib import Path

from deploy.local.config import REPO, StackConfig, read_dotenv
from services.core import config as core


def test_env_example_documents_the_defaults(tmp_path: Path) -> None:
    documented = read_dotenv(REPO / ".env.example")
    no_file = tmp_path / "none"
    assert StackConfig.from_env(documented, env_file=no_file) == StackConfig.from_env({}, env_file=no_file)
    assert documented["KAFKA_BOOTSTRAP"] == core.DEFAULT_KAFKA_BOOTSTRAP
    assert documented["INGEST_URL"] == f"http://127.0.0.1:{core.DEFAULT_INGEST_PORT}"
    assert documented["API_URL"] == f"http://127.0.0.1:{core.DEFAULT_API_PORT}"

