"""Security for the simulated OPC-UA server: its certificate, user logins and client trust.

The certificate is generated once into the configured directory and reused on later starts, as
a plant server's is: clients that pinned it keep working across simulator restarts.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

CERTIFICATE_FILE = "server_cert.der"
KEY_FILE = "server_key.pem"

POLICIES: dict[str, list[ua.SecurityPolicyType]] = {
    "None": [ua.SecurityPolicyType.NoSecurity],
    "Basic256Sha256": [
        ua.SecurityPolicyType.Basic256Sha256_Sign,
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ],
}


async def ensure_certificate(directory: Path, application_uri: str) -> tuple[Path, Path]:
    """Create the server's key and self-signed certificate on first start; reuse them after."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    certificate, key = directory / CERTIFICATE_FILE, directory / KEY_FILE
    await setup_self_signed_certificate(
        key,
        certificate,
        application_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {"organizationName": "mdfd simulators", "countryName": "KR"},
    )
    return certificate, key


class PasswordUsers(UserManager):
    """Username/password login; with no users configured every client is let in."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if not self._users:
            return User(role=UserRole.User)
        expected = self._users.get(username or "")
        if expected is None or password is None:
            return None
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return User(role=UserRole.User, name=username)


async def configure_security(
    server: Server,
    policies: list[str],
    certificate_dir: Path | None,
    trusted_clients: Path | None,
    users: dict[str, str],
) -> None:
    """Offer the configured policies; load the certificate; require logins and trust."""
    offered = [kind for name in policies for kind in POLICIES[name]]
    server.set_security_policy(offered)
    if users:
        server.set_identity_tokens([ua.UserNameIdentityToken])
    else:
        server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
    if certificate_dir is not None:
        certificate, key = await ensure_certificate(certificate_dir, server.get_application_uri())
        await server.load_certificate(str(certificate))
        await server.load_private_key(str(key))
    if trusted_clients is not None:
        store = TrustStore([trusted_clients], [])
        await store.load()
        options = (
            CertificateValidatorOptions.TIME_RANGE
            | CertificateValidatorOptions.URI
            | CertificateValidatorOptions.TRUSTED
            | CertificateValidatorOptions.PEER_CLIENT
        )
        server.set_certificate_validator(CertificateValidator(options, store))
