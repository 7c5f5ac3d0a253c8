"""The local broker with SASL_SSL (`make up KAFKA_SECURITY=sasl_ssl`): TLS and SCRAM material.

A CA and a broker certificate for 127.0.0.1 made with the openssl command, a PKCS12 keystore for
the broker, and two SCRAM-SHA-512 users created when the storage is formatted: `admin` (the
broker itself and the stack's own tooling) and `floorwatch` (the services). Everything lives in
the broker's folder (RUN_DIR/kafka-sasl_ssl), mode 0600, and goes with `make down WIPE=1`.
Locally any authenticated user may use any topic; per-service ACLs are in the Kubernetes base
(deploy/kubernetes/base/kafka-users.yaml).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

MECHANISM = "SCRAM-SHA-512"
SERVICE_USER = "floorwatch"
ADMIN_USER = "admin"
_DAYS = "825"  # the longest validity clients accept for a server certificate


@dataclass(frozen=True)
class LocalKafkaSecrets:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def _passwords(self) -> Path:
        return self.folder / "passwords.env"

    def passwords(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self._passwords.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            out[name] = value
        return out

    def ensure(self) -> None:
        """Make the CA, the broker's keystore and the users' passwords unless they exist."""
        if self.keystore.exists() and self._passwords.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        values = {name: secrets.token_urlsafe(24) for name in ("admin", "floorwatch", "keystore")}
        self._make_certificates(values["keystore"])
        fd = os.open(self._passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{k}={v}\n" for k, v in values.items()))

    def _make_certificates(self, keystore_password: str) -> None:
        f = self.folder
        ext = f / "broker.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        steps = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f / "ca.key", "-out", self.ca,
             "-days", _DAYS, "-subj", "/CN=floorwatch local CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", f / "broker.key", "-out", f / "broker.csr",
             "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", f / "broker.csr", "-CA", self.ca, "-CAkey", f / "ca.key", "-CAcreateserial",
             "-out", f / "broker.pem", "-days", _DAYS, "-extfile", ext],
            ["pkcs12", "-export", "-in", f / "broker.pem", "-inkey", f / "broker.key", "-certfile", self.ca,
             "-name", "broker", "-out", self.keystore, "-passout", f"pass:{keystore_password}"],
        ]
        for args in steps:
            result = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace')[-500:]}")
        for p in f.iterdir():
            os.chmod(p, 0o600)

    def server_properties(self, port: int) -> str:
        """The listener part of server.properties: one SASL_SSL listener, no plaintext one for clients."""
        pw = self.passwords()
        return f"""listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{{ctrl}}
advertised.listeners=SASL_SSL://127.0.0.1:{port}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms={MECHANISM}
sasl.mechanism.inter.broker.protocol={MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
required username="{ADMIN_USER}" password="{pw['admin']}";
ssl.keystore.type=PKCS12
ssl.keystore.location={self.keystore}
ssl.keystore.password={pw['keystore']}
ssl.truststore.type=PEM
ssl.truststore.location={self.ca}
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.3,TLSv1.2
"""

    def scram_format_args(self) -> list[str]:
        """StorageTool arguments that create the SCRAM users with the storage."""
        pw = self.passwords()
        return [arg for user, key in ((ADMIN_USER, "admin"), (SERVICE_USER, "floorwatch"))
                for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={pw[key]}]")]

    def client_env(self, user: str = SERVICE_USER) -> dict[str, str]:
        """The environment a client needs (services: KAFKA_* of services/core/kafka_security.py)."""
        return {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_USERNAME": user,
            "KAFKA_PASSWORD": self.passwords()["admin" if user == ADMIN_USER else "floorwatch"],
            "KAFKA_SSL_CAFILE": str(self.ca),
        }
