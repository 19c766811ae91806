"""The `tls:` block of a MySQL endpoint and of the Kafka section: the CA that signed the server's
certificate, whether its name is checked, an optional client certificate.

PostgreSQL needs no block: libpq reads `sslmode`, `sslrootcert`, `sslcert` and `sslkey` from the
DSN itself, on every connection cdc opens (the replication stream's too).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cdc.secrets import read_secret_file, secret_file_path, setting_error
from cdc.settings_base import SettingsModel

_PATH_HINT = (
    "relative paths resolve against $CREDENTIALS_DIRECTORY if set, else the config file's directory"
)


class TlsSettings(SettingsModel):
    """Connect over TLS and verify the server: `{}` trusts the system's CAs."""

    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA certificates that signed the server's; default: the"
        f" system's CAs; {_PATH_HINT}",
    )
    verify_hostname: bool = Field(
        True, description="check that the server's certificate names the host in the DSN"
    )
    cert_file: Path | None = Field(
        None, description="client certificate (PEM), for servers that ask for one"
    )
    key_file: Path | None = Field(None, description="the client certificate's private key (PEM)")

    @field_validator("ca_file", "cert_file", "key_file", mode="before")
    @classmethod
    def _readable(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value  # the Path type check reports it
        config_dir = info.context.get("config_dir") if isinstance(info.context, dict) else None
        path = secret_file_path(value, config_dir)
        read_secret_file(path)  # a missing or unreadable file fails here, not at connect time
        return path

    @model_validator(mode="after")
    def _loads(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise setting_error(
                "cert_file and key_file go together", "set both for a client certificate, or none"
            )
        self.ssl_context()  # a file that holds no certificate fails here, with its name
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server's chain (and name, if `verify_hostname`)."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except ssl.SSLError as error:
            raise setting_error(
                f"{self.ca_file} holds no usable CA certificate ({error.reason or error})",
                "ca_file must be PEM: one or more '-----BEGIN CERTIFICATE-----' blocks",
            ) from None
        context.check_hostname = self.verify_hostname
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except ssl.SSLError as error:
                raise setting_error(
                    f"{self.cert_file} and {self.key_file} are not a certificate and its"
                    f" unencrypted private key ({error.reason or error})",
                    "both files must be PEM, and the key must belong to the certificate",
                ) from None
        return context
