"""The `kafka:` section of a pipeline: brokers, TLS and SASL, topics, librdkafka passthrough."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from cdc.kafka_log import KAFKA_LOGGER
from cdc.secrets import (
    MASK,
    Secret,
    read_secret_file,
    register_secret,
    secret_file_path,
    setting_error,
)
from cdc.settings_base import SettingsModel, check_host_port, no_default
from cdc.settings_tls import TlsSettings

LibrdkafkaValue = str | bool | int | float
# cdc sets these itself; a passthrough copy would silently disagree with it.
_RESERVED_KAFKA_KEYS = {
    "bootstrap.servers": "set kafka.bootstrap_servers instead",
    "group.id": "the consumer group is the pipeline name",
    # one id shared by several consumers would have them fence each other
    "group.instance.id": "set sink.instance_id instead: each sink consumer is a static"
    " member <instance_id>-<worker>",
    # the admin clients and internal topics' clients need it too, not only the producer or consumer
    "security.protocol": "set kafka.tls and/or kafka.sasl, which every Kafka client of cdc uses",
}


DEFAULT_MAX_MESSAGE_BYTES = 33_554_432  # kafka.max_message_bytes
# Every client's librdkafka settings for a broker that went away. Its reconnect backoff
# doubles up to 10 s by default: a client may then call on a restarted broker that long
# after it is back (the MariaDB source's position writes wait for it). Trying every
# second or so costs a refused connection.
RECONNECT_DEFAULTS: dict[str, Any] = {"reconnect.backoff.max.ms": 1000}
# room for a message's record overhead and headers above kafka.max_message_bytes,
# in the producers' message.max.bytes and the topics' max.message.bytes
MESSAGE_HEADROOM = 65_536


def is_secret_kafka_key(key: str) -> bool:
    """librdkafka keys whose values are secrets (sasl.password, ssl.key.pem, ...)."""
    key = key.lower()
    return any(word in key for word in ("password", "secret")) or key.endswith((".pem", ".config"))


def _scalar(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    raise setting_error("must be a string, number or boolean", "librdkafka settings are scalars")


def _check_servers(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = ",".join(value)
    if not isinstance(value, str):
        return value  # the str type check reports it
    return ",".join(check_host_port(server) for server in value.split(","))


_Librdkafka = dict[str, Annotated[LibrdkafkaValue, BeforeValidator(_scalar)]]


class SaslSettings(SettingsModel):
    """Authenticate to the brokers with SASL (over TLS when kafka.tls is set: SASL_SSL)."""

    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
    )
    username: str = Field(min_length=1, description="the Kafka user")
    password: Secret = Field(description="its password; ${ENV_VAR} keeps it out of the file")
    password_file: Path | None = Field(
        None,
        description="file holding the password, instead of password; relative: to"
        " $CREDENTIALS_DIRECTORY if set, else to the config file's directory",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_password_file(cls, data: Any, info: ValidationInfo) -> Any:
        """The password from `password_file` (as a DSN from `dsn_file`); a file
        that cannot be read is reported with its path."""
        if not isinstance(data, dict) or not isinstance(data.get("password_file"), str):
            return data
        if "password" in data:
            raise setting_error(
                "set password or password_file, not both", "remove one of them from kafka.sasl"
            )
        config_dir = info.context.get("config_dir") if isinstance(info.context, dict) else None
        path = secret_file_path(data["password_file"], config_dir)
        return {**data, "password_file": path, "password": read_secret_file(path)}


class KafkaSettings(SettingsModel):
    """The Kafka cluster the change events travel through."""

    bootstrap_servers: Annotated[str, BeforeValidator(_check_servers)] = Field(
        description="the brokers, a comma-separated host:port list"
    )
    topic_prefix: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._\-]{1,200}$",
        json_schema_extra=no_default,
        description="topics are <topic_prefix>.<schema>.<table>; default: the name",
    )
    partitions: int = Field(6, ge=1, description="the partition count of each topic cdc creates")
    replication_factor: int = Field(1, ge=1, description="the replica count of each topic")
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES,
        ge=1_048_576,
        le=100_000_000,
        description="the largest change message (one row, as JSON) cdc sends: the producer's"
        " message.max.bytes and the max.message.bytes of each topic cdc creates; a larger"
        " row stops the source with its table, key and size",
    )
    tls: TlsSettings | None = Field(
        None,
        description="connect over TLS (security.protocol SSL, or SASL_SSL with sasl):"
        " {ca_file: ..., verify_hostname: true}; {} trusts the system's CAs",
    )
    sasl: SaslSettings | None = Field(
        None, description="a mapping with mechanism, username, password"
    )
    # repr=False: they may hold sasl.password and the like.
    producer: _Librdkafka = Field(
        default_factory=dict, repr=False, description="librdkafka producer settings"
    )
    consumer: _Librdkafka = Field(
        default_factory=dict, repr=False, description="librdkafka consumer settings"
    )

    @field_validator("producer", "consumer")
    @classmethod
    def _check_passthrough(cls, value: dict[str, LibrdkafkaValue]) -> dict[str, LibrdkafkaValue]:
        for key, item in value.items():
            if key in _RESERVED_KAFKA_KEYS:
                raise setting_error(
                    f"{key} is set by cdc", f"remove it: {_RESERVED_KAFKA_KEYS[key]}"
                )
            if is_secret_kafka_key(key) and isinstance(item, str):
                register_secret(item)
        return value

    @field_serializer("producer", "consumer")
    def _mask_passthrough(self, value: dict[str, LibrdkafkaValue]) -> dict[str, LibrdkafkaValue]:
        return {key: MASK if is_secret_kafka_key(key) else item for key, item in value.items()}

    def client_config(self) -> dict[str, Any]:
        """What every client (producer, consumer, admin) needs to reach the cluster: brokers,
        TLS and SASL, and cdc's logger. Secrets included: never log it."""
        tls, sasl = self.tls, self.sasl
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": KAFKA_LOGGER,
            **RECONNECT_DEFAULTS,
            # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
            "security.protocol": ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT"),
        }
        if tls is not None:
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if tls.verify_hostname else "none"
            )
            for key, path in (
                ("ssl.ca.location", tls.ca_file),
                ("ssl.certificate.location", tls.cert_file),
                ("ssl.key.location", tls.key_file),
            ):
                if path is not None:
                    config[key] = str(path)
        if sasl is not None:
            config["sasl.mechanism"] = sasl.mechanism
            config["sasl.username"] = sasl.username
            config["sasl.password"] = sasl.password.get_secret_value()
        return config

    def producer_config(self) -> dict[str, Any]:
        """librdkafka settings for a producer, secrets included: never log them."""
        return {**self.client_config(), **self.producer}

    def consumer_config(self, group_id: str) -> dict[str, Any]:
        """librdkafka settings for a consumer, secrets included: never log them."""
        return {**self.client_config(), "group.id": group_id, **self.consumer}
