"""deploy/ as a user finds it: every file described in deploy/README.md, and every file with
`${NAME}` placeholders either named `*.tmpl` or placeholder-free outside annotation text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from deploy.local.monitoring import render_configs
from deploy.local.testing import config_for_tests

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PLACEHOLDER = re.compile(r"\$\{[A-Z_][A-Z0-9_]*\}")


def deploy_files() -> list[Path]:
    files = (p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(p for p in files if p.name != "README.md")


def cell_pattern(cell: str) -> re.Pattern[str]:
    """A README cell as a path pattern: `*` within a folder, `{a,b}` for either."""
    parts = []
    for token in re.findall(r"\{[^}]*\}|\*|[^{*]+", cell):
        if token == "*":
            parts.append("[^/]*")
        elif token.startswith("{"):
            parts.append("(" + "|".join(map(re.escape, token[1:-1].split(","))) + ")")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


def described(path: Path, readme: str) -> bool:
    rel = path.relative_to(DEPLOY).as_posix()
    return any(cell_pattern(cell).fullmatch(rel) for cell in re.findall(r"`([^`]+)`", readme))


def test_every_deploy_file_is_described_in_the_readme() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    missing = [p.relative_to(DEPLOY).as_posix() for p in deploy_files() if not described(p, readme)]
    assert not missing, f"deploy/README.md has no line for {missing}"


def strings_outside_annotations(doc: Any, inside: bool = False) -> list[str]:
    if isinstance(doc, dict):
        return [
            s for k, v in doc.items()
            for s in strings_outside_annotations(v, inside or k in ("annotations", "exp_annotations"))
        ]
    if isinstance(doc, list):
        return [s for v in doc for s in strings_outside_annotations(v, inside)]
    return [doc] if isinstance(doc, str) and not inside else []


def test_files_with_placeholders_are_templates() -> None:
    for path in deploy_files():
        if path.suffix not in (".yml", ".yaml", ".tmpl", ".toml", ".json", ".xml"):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        if path.suffix == ".tmpl":
            assert PLACEHOLDER.search(text), f"{path} is named a template but has no placeholder"
        elif path.parent.name in ("rules", "tests"):
            # Usable as shipped: placeholders only in annotation text (links) and the promtool cases
            # expecting it, never in what Prometheus evaluates.
            values = strings_outside_annotations(yaml.safe_load(text))
            assert not [v for v in values if PLACEHOLDER.search(v)], path
        else:
            assert not PLACEHOLDER.search(text), f"{path} has placeholders: name it *.tmpl and render it"


def test_templates_render_without_placeholders(tmp_path: Path) -> None:
    cfg = config_for_tests(run_dir=tmp_path, scorer_workers=2)
    prom, am = render_configs(cfg, tmp_path / "out")
    for path in (prom, am, *sorted((tmp_path / "out" / "rules").glob("*.yml"))):
        text = path.read_text(encoding="utf-8")
        assert not PLACEHOLDER.search(text), path
        assert yaml.safe_load(text), path
    assert cfg.alert_webhook_url in am.read_text(encoding="utf-8")
