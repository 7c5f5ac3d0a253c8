"""`make k8s-secrets`: random secrets for the Kubernetes base, in git-ignored env files it generates Secrets from.

deploy/kubernetes/base/kustomization.yaml has a `secretGenerator` per workload reading
`deploy/kubernetes/base/secrets/<workload>.env`; this writes those files (mode 0600) with fresh random
values, and never overwrites one that exists (a second run changes nothing; delete a file to rotate its
values). Each workload gets only what it uses: ingest its tokens and the platform webhook secrets, the API
its write and read tokens, the scorer nothing but the salt of the agent-<hash> names it shares with the API.

`python deploy/local/k8s_secrets.py [BASE_DIR]` (tests generate into a copy of the base).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Final

BASE: Final = Path(__file__).resolve().parents[1] / "kubernetes" / "base"

# Per workload: each key, and whether it gets a random value (False: present but empty, i.e. off).
WORKLOAD_SECRETS: Final[dict[str, dict[str, bool]]] = {
    "ingest": {
        "INGEST_TOKEN": True,
        "INGEST_TOKENS": False,  # tenant=token pairs: set them when tenants send with their own tokens
        "CHATWOOT_WEBHOOK_SECRET": True,
        "LIVECHAT_SECRET_KEY": True,
        "SUNSHINE_API_KEY": True,
    },
    "api": {"API_TOKEN": True, "API_READ_TOKEN": True, "AGENT_ID_SALT": True},
    "scorer": {"AGENT_ID_SALT": True},
}
SHARED: Final = ("AGENT_ID_SALT",)  # one value for every workload that has it (the same names everywhere)


def secret_name(workload: str) -> str:
    return f"floorwatch-{workload}-secrets"


def generate(base: Path = BASE) -> list[Path]:
    """Write the env files that are missing; returns those written."""
    folder = base / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    shared = {name: _existing(folder, name) or secrets.token_urlsafe(24) for name in SHARED}
    written = []
    for workload, keys in WORKLOAD_SECRETS.items():
        path = folder / f"{workload}.env"
        if path.exists():
            continue
        lines = [f"# {secret_name(workload)}: written by `make k8s-secrets`. Never commit this file."]
        for key, random in keys.items():
            value = shared[key] if key in shared else secrets.token_urlsafe(24) if random else ""
            lines.append(f"{key}={value}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        written.append(path)
    return written


def _existing(folder: Path, key: str) -> str | None:
    """A shared value already in one of the files (so a regenerated file agrees with the others)."""
    for path in sorted(folder.glob("*.env")):
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return None


def main(argv: list[str]) -> int:
    base = Path(argv[0]) if argv else BASE
    for path in generate(base):
        print(f"wrote {path} (0600, git-ignored)")
    print(f"secrets for `kubectl apply -k`: {base / 'secrets'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
