"""The local stack's defaults are services/core/config.py's, and .env.example documents those very values."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local import config as local_config
from deploy.local.config import REPO, StackConfig, StackError, ephemeral_clash, ephemeral_ports, read_dotenv
from deploy.local.testing import config_for_tests
from services.core import config as core


def test_env_example_documents_the_defaults(tmp_path: Path) -> None:
    documented = read_dotenv(REPO / ".env.example")
    no_file = tmp_path / "none"
    assert StackConfig.from_env(documented, env_file=no_file) == StackConfig.from_env({}, env_file=no_file)
    assert documented["KAFKA_BOOTSTRAP"] == core.DEFAULT_KAFKA_BOOTSTRAP
    assert documented["INGEST_URL"] == f"http://127.0.0.1:{core.DEFAULT_INGEST_PORT}"
    assert documented["API_URL"] == f"http://127.0.0.1:{core.DEFAULT_API_PORT}"


def test_ports_in_the_ephemeral_range_are_named(tmp_path: Path) -> None:
    # A port there can be held by an outgoing connection (a client's self-connect while its part is down).
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("32768\t60999\n")
    assert ephemeral_ports(range_file) == range(32768, 61000)
    assert ephemeral_clash([9092, 32767, 61000], range_file) is None
    why = ephemeral_clash([29092, 32792, 32768], range_file)
    assert why is not None and "[32768, 32792]" in why and "below 32768" in why
    assert ephemeral_clash([32792], tmp_path / "missing") is None  # no such file: nothing to say


def test_tests_refuse_an_offset_that_reaches_the_ephemeral_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("32768 60999\n")
    monkeypatch.setattr(local_config, "EPHEMERAL_RANGE_FILE", range_file)
    monkeypatch.setenv("TEST_PORT_OFFSET", "3600")  # highest port 29099 + 3600 = 32699: allowed
    assert config_for_tests().kafka_port == 32692
    monkeypatch.setenv("TEST_PORT_OFFSET", "3700")  # the broker on 32792: refused before anything starts
    with pytest.raises(StackError, match=r"TEST_PORT_OFFSET=3700: port\(s\) \[32790, 32792, 32794, 32795, 32799\]"):
        config_for_tests()
