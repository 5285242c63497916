"""Logging in to an OPC-UA server: the secure channel and the user a config asks for, and
what to tell an operator when the server refuses either (asyncua says only a status code,
or, for a refused secure channel, nothing usable at all)."""

from __future__ import annotations

import contextlib
import os

from asyncua import Client, ua
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509

from ..errors import ProtocolError
from .config import OpcUaInstrument

LOGIN_REFUSED = ("BadUserAccessDenied", "BadIdentityToken")
SECURITY_REFUSED = ("BadCertificate", "BadSecurity", "BadNonce", "BadApplicationSignature")


async def configure_login(name: str, config: OpcUaInstrument, client: Client) -> None:
    """Set the client's secure channel and user from the config, before it connects."""
    security = config.security
    if security.policy == "Basic256Sha256":
        assert security.certificate is not None
        assert security.private_key is not None
        for path in (security.certificate, security.private_key, security.server_certificate):
            if path is not None and not path.is_file():
                raise ProtocolError(name, f"security file {path} does not exist")
        certificate = await uacrypto.load_certificate(str(security.certificate))
        with contextlib.suppress(x509.ExtensionNotFound):
            names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
            if uris:
                client.application_uri = uris[0]
        server = security.server_certificate
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            certificate=str(security.certificate),
            private_key=str(security.private_key),
            server_certificate=str(server) if server is not None else None,
            mode=getattr(ua.MessageSecurityMode, security.mode),
        )
    if config.username is not None:
        client.set_user(config.username)
        if config.password_env is not None:
            password = os.environ.get(config.password_env)
            if password is None:
                raise ProtocolError(
                    name,
                    f"environment variable {config.password_env} (password_env) is not "
                    "set; cannot log in",
                )
            client.set_password(password)


def refusal(config: OpcUaInstrument, status: str) -> str:
    """Why the server answered an activation with `status`, in words an operator can act on."""
    if status.startswith(LOGIN_REFUSED):
        user = config.username or "anonymous"
        env = config.password_env
        source = f" (password from ${env})" if env else ""
        return f"the server refused the login of user {user!r}{source}"
    if status.startswith(SECURITY_REFUSED):
        return (
            f"the server refused the secure channel ({config.security.policy}/"
            f"{config.security.mode}); is the client certificate trusted by the server?"
        )
    return "the server answered with a bad status"


def channel_refused(config: OpcUaInstrument) -> str:
    """Why a server may refuse the secure channel without saying so in a usable way."""
    security = config.security
    if security.policy == "None":
        return (
            "the server refused to open the secure channel (security policy None); it may "
            "require a signed or encrypted channel (set security.policy) or not trust this "
            "client"
        )
    return (
        f"the server refused to open the secure channel ({security.policy}/{security.mode}); "
        f"most likely it does not trust the client certificate {security.certificate}: "
        "add it to the server's trusted certificates"
    )
