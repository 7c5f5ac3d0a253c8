"""How every Kafka client of Floorwatch authenticates and encrypts: one home for its settings.

From the environment (documented in .env.example):
- KAFKA_SECURITY_PROTOCOL: PLAINTEXT (default, a broker on loopback), SSL, SASL_PLAINTEXT, SASL_SSL.
- KAFKA_SASL_MECHANISM: SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN.
- KAFKA_USERNAME / KAFKA_PASSWORD: the service's SCRAM user (one user per service in production:
  deploy/kubernetes/base/kafka-users.yaml grants each only what it uses).
- KAFKA_SSL_CAFILE: the CA that signed the broker's certificate (else the system's CAs);
  KAFKA_SSL_CERTFILE / KAFKA_SSL_KEYFILE: a client certificate, for brokers that ask for one;
  KAFKA_SSL_CHECK_HOSTNAME: true (default) checks the broker's name against its certificate.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class KafkaSecurityError(ValueError):
    pass


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __repr__(self) -> str:  # never the password, in logs or tracebacks
        return f"KafkaSecurity(protocol={self.protocol!r}, mechanism={self.sasl_mechanism!r}, user={self.username!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if environ is None else environ

        def opt(name: str) -> str | None:
            return env.get(name) or None

        sec = cls(
            protocol=(env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            sasl_mechanism=(env.get("KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512").upper(),
            username=opt("KAFKA_USERNAME"),
            password=opt("KAFKA_PASSWORD"),
            ssl_cafile=opt("KAFKA_SSL_CAFILE"),
            ssl_certfile=opt("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=opt("KAFKA_SSL_KEYFILE"),
            ssl_check_hostname=(env.get("KAFKA_SSL_CHECK_HOSTNAME") or "true").lower() not in ("0", "false", "no"),
        )
        sec.validate()
        return sec

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(f"KAFKA_SECURITY_PROTOCOL={self.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        if self.uses_sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise KafkaSecurityError(
                    f"KAFKA_SASL_MECHANISM={self.sasl_mechanism!r}: use one of {', '.join(MECHANISMS)}")
            if not self.username or not self.password:
                raise KafkaSecurityError(f"{self.protocol} needs KAFKA_USERNAME and KAFKA_PASSWORD")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise KafkaSecurityError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        for name, path in (("KAFKA_SSL_CAFILE", self.ssl_cafile), ("KAFKA_SSL_CERTFILE", self.ssl_certfile),
                           ("KAFKA_SSL_KEYFILE", self.ssl_keyfile)):
            if path and self.uses_tls and not os.path.isfile(path):
                raise KafkaSecurityError(f"{name}={path}: no such file")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile and self.ssl_keyfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            out["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            out.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                       sasl_plain_password=self.password)
        return out


def client_kwargs(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The security keyword arguments of an aiokafka client, as this process is configured."""
    return KafkaSecurity.from_env(environ).aiokafka_kwargs()
