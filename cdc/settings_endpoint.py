"""Where a source or target connects: `dsn`, or `dsn_file` naming a file that holds it (read
and checked here, reported at `dsn_file`), and for MySQL/MariaDB an optional `tls:` block."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cdc.secrets import (
    MYSQL_DSN_FORM,
    Dsn,
    MysqlDsn,
    read_secret_file,
    secret_file_path,
    setting_error,
)
from cdc.settings_base import SettingsModel
from cdc.settings_tls import TlsSettings

DsnFile = Annotated[
    Path | None,
    Field(
        description="file holding the DSN, instead of dsn; relative: to $CREDENTIALS_DIRECTORY"
        " if set, else to the config file's directory"
    ),
]


class _Failed:
    """A dsn_file problem, carried from the model validator to the dsn_file field so that it is
    reported at `dsn_file` while the section's other keys are still checked."""

    def __init__(self, error: PydanticCustomError) -> None:
        self.error = error


def _dsn_or_file(schema: dict[str, Any]) -> None:
    required = schema.get("required")
    if isinstance(required, list) and "dsn" in required:
        required.remove("dsn")
    schema["oneOf"] = [{"required": ["dsn"]}, {"required": ["dsn_file"]}]


class Endpoint(SettingsModel):
    """Where to connect: `dsn`, or `dsn_file` naming a file that holds it."""

    model_config = ConfigDict(json_schema_extra=_dsn_or_file)
    dsn_type: ClassVar[type[Dsn]]
    # Subclasses narrow type and dsn; the fields keep this order in dumps.
    type: str
    dsn: Dsn
    dsn_file: DsnFile = None

    @model_validator(mode="before")
    @classmethod
    def _read_dsn_file(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or data.get("dsn_file") is None:
            return data
        data = dict(data)
        if "dsn" in data:
            data["dsn_file"] = _Failed(setting_error("set dsn or dsn_file, not both", "remove one"))
            return data
        if not isinstance(data["dsn_file"], str):
            data["dsn"] = cls.dsn_type("")  # never used: dsn_file's type error is the one to fix
            return data
        config_dir = info.context.get("config_dir") if isinstance(info.context, dict) else None
        path = data["dsn_file"] = secret_file_path(data["dsn_file"], config_dir)
        try:
            data["dsn"] = cls.dsn_type.parse(read_secret_file(path))
        except PydanticCustomError as error:
            message, hint = (str((error.context or {}).get(key, "")) for key in ("message", "hint"))
            if str(path) not in message:
                message = f"{path}: {message}"
            data["dsn_file"] = _Failed(setting_error(message, hint))
            data["dsn"] = cls.dsn_type("")  # never used: validation fails at dsn_file
        return data

    @field_validator("dsn_file", mode="before", check_fields=False)
    @classmethod
    def _report_dsn_file(cls, value: Any) -> Any:
        if isinstance(value, _Failed):
            raise value.error
        return value


class MysqlEndpoint(Endpoint):
    dsn_type = MysqlDsn
    dsn: MysqlDsn = Field(description=f"MySQL/MariaDB connection URL: {MYSQL_DSN_FORM}")
    tls: TlsSettings | None = Field(
        None,
        description="connect over TLS: {ca_file: ..., verify_hostname: true}; none: the driver"
        " uses TLS when the server offers it, without verifying the certificate",
    )

    @model_validator(mode="after")
    def _dsn_with_tls(self) -> Self:
        if self.tls is not None:
            self.dsn = self.dsn.with_tls(self.tls.ssl_context())
        return self
