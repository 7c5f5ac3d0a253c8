"""SCORECARD_CONFIG: the scorecard's targets, floors, weights, grade lines and flag rules from a file.

TOML or JSON (by the file's ending, else by its first character), over the defaults of
shared/SCORECARD.md. A file is applied whole or refused whole: any mistake raises
`ScorecardConfigError` naming the line at fault, so a service refuses to start rather than
score agents by half a configuration.

    min_chats = 5
    [grades]                      # lines, best first; below the last one: D
    A = 90
    B = 75
    C = 60
    [flags]
    stars = 3
    star_min_chats = 50
    warning_d_days = 3
    [kpis.frt_mean_s]             # every platform
    target = 15
    floor = 60
    [platforms.jd.kpis.reply_mean_s]   # one platform (or family: taobao, jd, pdd, other)
    target = 25
    weight = 20
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .scorecard import KPIS, KpiRule, ScorecardConfig, default_config, family


class ScorecardConfigError(ValueError):
    pass


_TOP_KEYS = {"min_chats", "grades", "flags", "kpis", "platforms"}
_FLAG_KEYS = {"stars", "star_min_chats", "warning_d_days"}
_RULE_KEYS = {"target", "floor", "weight"}


def load_config(path: str | Path) -> ScorecardConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScorecardConfigError(f"SCORECARD_CONFIG {p}: cannot read: {exc.strerror}") from None
    return parse_config(text, fmt="json" if p.suffix == ".json" else "toml" if p.suffix == ".toml" else None,
                        source=str(p))


def parse_config(text: str, fmt: str | None = None, source: str = "SCORECARD_CONFIG") -> ScorecardConfig:
    fmt = fmt or ("json" if text.lstrip().startswith("{") else "toml")
    try:
        data: Any = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise ScorecardConfigError(f"{source} line {exc.lineno}: not JSON: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScorecardConfigError(f"{source}: not TOML: {exc}") from None  # tomllib names line and column
    if not isinstance(data, dict):
        raise ScorecardConfigError(f"{source}: the top level must be a table of settings")
    return _Reader(text, source).config(data)


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, path: tuple[str, ...], reason: str) -> ScorecardConfigError:
        where = self._line_of(path)
        at = f" line {where}" if where else ""
        return ScorecardConfigError(f"{self.source}{at} ({'.'.join(path)}): {reason}")

    def _line_of(self, path: tuple[str, ...]) -> int | None:
        """The first line that names the path's keys in order (one key may follow another on a
        line, as in a TOML header): good enough to point a person at the mistake."""
        line_no, col = 0, 0
        for key in path:
            pattern = re.compile(rf'(?<![\w-])"?{re.escape(key)}"?(?![\w-])')
            while line_no < len(self.lines):
                m = pattern.search(self.lines[line_no], col)
                if m:
                    col = m.end()
                    break
                line_no, col = line_no + 1, 0
            else:
                return None
        return line_no + 1

    def number(self, value: Any, path: tuple[str, ...], *, lo: float = 0, whole: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, not {value!r}")
        if whole and value != int(value):
            raise self.fail(path, f"must be a whole number, not {value!r}")
        if value < lo:
            raise self.fail(path, f"must be at least {lo:g}")
        return float(value)

    def table(self, value: Any, path: tuple[str, ...], known: set[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table")
        for key in value:
            if known is not None and key not in known:
                raise self.fail((*path, key), f"unknown setting; known: {', '.join(sorted(known))}")
        return value

    def rules(self, base: Mapping[str, KpiRule], raw: Any, path: tuple[str, ...]) -> dict[str, KpiRule]:
        out = dict(base)
        for kpi, spec in self.table(raw, path, set(KPIS)).items():
            here = (*path, kpi)
            changes = {k: self.number(v, (*here, k)) for k, v in self.table(spec, here, _RULE_KEYS).items()}
            rule = replace(out[kpi], **changes)
            if rule.target == rule.floor:
                raise self.fail((*here, "floor"), "target and floor must differ (points are linear between them)")
            out[kpi] = rule
        return out

    def config(self, data: Mapping[str, Any]) -> ScorecardConfig:
        self.table(data, (), _TOP_KEYS)
        base = default_config()
        everywhere = data.get("kpis")
        kpis: dict[str, dict[str, KpiRule]] = {}
        for fam, rules in base.kpis.items():
            kpis[fam] = dict(rules) if everywhere is None else self.rules(rules, everywhere, ("kpis",))
        for platform, spec in self.table(data.get("platforms", {}), ("platforms",)).items():
            here = ("platforms", platform)
            spec = self.table(spec, here, {"kpis"})
            start = kpis.get(platform) or kpis[family(platform)]
            kpis[platform] = self.rules(start, spec.get("kpis", {}), (*here, "kpis"))
        for fam, rules in kpis.items():
            if sum(r.weight for r in rules.values()) <= 0:
                raise self.fail(("platforms", fam), "the weights must not all be 0")
        grades = base.grades
        if "grades" in data:
            raw = self.table(data["grades"], ("grades",))
            if not raw:
                raise self.fail(("grades",), "needs at least one grade line")
            lines = [(name, self.number(v, ("grades", name))) for name, v in raw.items()]
            if any(b[1] >= a[1] for a, b in itertools.pairwise(lines)):
                raise self.fail(("grades",), "grade lines must be listed best first, each below the one before")
            grades = tuple(lines)
        flags = {k: int(self.number(v, ("flags", k), whole=True))
                 for k, v in self.table(data.get("flags", {}), ("flags",), _FLAG_KEYS).items()}
        min_chats = int(self.number(data.get("min_chats", base.min_chats), ("min_chats",), whole=True))
        return ScorecardConfig(kpis=kpis, grades=grades, min_chats=min_chats, **flags)



def _env_whole(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ScorecardConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ScorecardConfigError(f"{name} must be at least 0, got {value}")
    return value


def config_from_env() -> ScorecardConfig:
    """SCORECARD_CONFIG's file over the defaults, then SCORECARD_MIN_CHATS and SCORECARD_STARS if set.
    Raises ScorecardConfigError (a service refuses to start: never half a configuration)."""
    path = os.environ.get("SCORECARD_CONFIG", "")
    config = load_config(path) if path else default_config()
    return replace(config, min_chats=_env_whole("SCORECARD_MIN_CHATS", config.min_chats),
                   stars=_env_whole("SCORECARD_STARS", config.stars))
