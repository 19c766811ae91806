"""Typed model of one pipeline's configuration file (commented examples in `config/`).

Load a file with `cdc.settings_load.load_settings`, which adds `${ENV}`
interpolation and readable errors. Connection strings are the secret types of
`cdc.secrets` (`PostgresDsn`, `MysqlDsn`): repr, str and every dump show the
password as `***`, and validating one registers its password for redaction.

Sections with more than a few keys have modules of their own: `settings_names` (the
pipeline's name, `schema.table` names, table selection), `settings_endpoint` (`dsn`,
`dsn_file`, `tls` of a source or target), `settings_kafka`, `settings_cutover`,
`settings_tls`.

`python -m cdc.settings` prints the JSON schema committed as `config/schema.json`.
"""

from __future__ import annotations

import json
import zlib
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from cdc.secrets import PG_DSN_FORM, PostgresDsn, redact, setting_error
from cdc.settings_base import SettingsModel, check_host_port, no_default
from cdc.settings_cutover import CutoverSettings
from cdc.settings_endpoint import Endpoint, MysqlEndpoint
from cdc.settings_kafka import KafkaSettings
from cdc.settings_names import Name, TableFilter, TableName, Tables
from cdc.settings_schema_changes import SchemaChangeSettings

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ConflictPolicy = Literal["source-wins", "target-wins", "last-writer-wins", "error"]


class _Source(Endpoint):
    tables: Tables

    def selects(self, schema: str, table: str) -> bool:
        """Whether changes of `schema.table` are captured."""
        if isinstance(self.tables, TableFilter):
            return self.tables.matches(schema, table)
        return f"{schema}.{table}" in self.tables


class PostgresSource(_Source):
    """Read changes from PostgreSQL logical replication (pgoutput)."""

    dsn_type = PostgresDsn
    type: Literal["postgres"]
    dsn: PostgresDsn = Field(description=f"PostgreSQL connection string: {PG_DSN_FORM}")
    slot_name: Name = Field(
        "", json_schema_extra=no_default, description="the replication slot; default: the name"
    )
    publication: Name = Field(
        "", json_schema_extra=no_default, description="the publication; default: the name"
    )
    heartbeat_interval_s: float = Field(
        10.0, gt=0, description="seconds between heartbeats, which keep an idle slot advancing"
    )


def default_server_id(name: str) -> int:
    """4242000000 + crc32(name) % 50000000: stable for a pipeline, and two pipelines reading one
    server (each must have its own id, or the server drops one) rarely collide."""
    return 4_242_000_000 + zlib.crc32(name.encode()) % 50_000_000


class MysqlSource(MysqlEndpoint, _Source):
    """Read changes from the MySQL/MariaDB binlog (binlog_format=ROW)."""

    type: Literal["mysql"]
    server_id: int = Field(
        0,
        ge=1,
        le=4_294_967_295,
        json_schema_extra=no_default,
        description="replica id, unique per server; default: 4242000000 + crc32(name) % 50000000",
    )
    # An unquoted YAML `null` arrives as None: it names the policy "null".
    zero_dates: Annotated[
        Literal["null", "error"], BeforeValidator(lambda v: "null" if v is None else v)
    ] = Field("null", description="what a 0000-00-00 date becomes: null, or error (stop)")


Source = Annotated[PostgresSource | MysqlSource, Field(discriminator="type")]
_CONFLICT = "when the target row changed too: source-wins, target-wins, last-writer-wins, error"


class TableOverride(SettingsModel):
    """Per-table settings that override the target's."""

    conflict: ConflictPolicy = Field(description=_CONFLICT)


class _Target(Endpoint):
    conflict: ConflictPolicy = Field("source-wins", description=_CONFLICT)
    tables: dict[TableName, TableOverride] = Field(
        default_factory=dict, description="per-table overrides: {schema.table: {conflict: ...}}"
    )
    create_tables: bool = Field(False, description="true: create missing target tables")

    def conflict_for(self, schema: str, table: str) -> ConflictPolicy:
        override = self.tables.get(f"{schema}.{table}")
        return override.conflict if override else self.conflict


class PostgresTarget(_Target):
    """Apply changes to PostgreSQL."""

    dsn_type = PostgresDsn
    type: Literal["postgres"]
    dsn: PostgresDsn = Field(description=f"PostgreSQL connection string: {PG_DSN_FORM}")


class MysqlTarget(MysqlEndpoint, _Target):
    """Apply changes to MySQL/MariaDB."""

    type: Literal["mysql"]


Target = Annotated[PostgresTarget | MysqlTarget, Field(discriminator="type")]


# --- the rest ---------------------------------------------------------------------------------


class TransformSettings(BaseModel):
    """One row transform; its other keys are options, checked by the transforms registry."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(min_length=1, description="the transform's registered name")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SnapshotSettings(SettingsModel):
    """The initial copy of the selected tables, taken before streaming."""

    mode: Literal["initial", "direct", "never"] = Field(
        "initial",
        description="initial (rows through Kafka), direct (rows straight into the target,"
        " then changes through Kafka; needs target), or never (stream changes only)",
    )
    parallelism: int = Field(4, ge=1, le=256, description="how many tables are copied at once")
    chunk_rows: int = Field(100_000, ge=1, description="how many rows are read per chunk")


class SinkSettings(SettingsModel):
    """How the sink role runs."""

    # Default 1: every worker holds a target connection and a Kafka consumer, and the CPU
    # count a container sees is usually the host's; scale up where the target and the
    # host are known to take it (beyond the topics' partition count, workers idle).
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="sink processes sharing the topics' partitions in one consumer group;"
        " up to the host's CPUs pays, more than kafka.partitions idle",
    )
    # Static membership (KIP-345): a sink killed and started again on its host rejoins
    # the consumer group as the member it was and gets its partitions back at once, and
    # so does one whose session Kafka lost while it was down; a new member would wait
    # for the old one's session timeout first. A sink that stops leaves the group.
    instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._\-]{1,200}$",
        description="the sink's consumers join the consumer group as static members"
        " <instance_id>-0, <instance_id>-1, ... (one per worker; group.instance.id), so that"
        " a sink restarted after a crash gets its partitions back at once; default: the host"
        " name. Two sink daemons of one pipeline on one host need different ones",
    )


class MetricsSettings(SettingsModel):
    """The Prometheus endpoint, /metrics."""

    listen: Annotated[str, AfterValidator(lambda v: check_host_port(v, min_port=0))] = Field(
        "127.0.0.1:9187", description="host:port; 0.0.0.0:9187 listens on every interface"
    )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) for a server socket, IPv6 brackets removed."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LogSettings(SettingsModel):
    """Log lines, written to stderr."""

    format: Literal["json", "console"] = Field(
        "json", description="json (one object per line) or console"
    )
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = Field(
        "info", description="debug, info, warning or error"
    )


class Settings(SettingsModel):
    """One cdc pipeline: a source, the Kafka topics its changes go to, optionally a target."""

    model_config = ConfigDict(title="cdc pipeline")

    name: Name = Field(
        description="a-z, 0-9, _ (max 63): names the slot, publication, topics, group"
    )
    source: Source = Field(description="a mapping with type: postgres or type: mysql, dsn, tables")
    kafka: KafkaSettings = Field(description="a mapping with bootstrap_servers: host:port")
    target: Target | None = Field(None, description="where changes are applied; none: source only")
    transforms: list[TransformSettings] = Field(
        default_factory=list, description="a list of {type: ..., options}"
    )
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    cutover: CutoverSettings = Field(default_factory=CutoverSettings)
    schema_changes: SchemaChangeSettings = Field(default_factory=SchemaChangeSettings)

    @model_validator(mode="after")
    def _derive_defaults(self) -> Self:
        source = self.source
        if isinstance(source, PostgresSource):
            source.slot_name = source.slot_name or self.name
            source.publication = source.publication or self.name
        elif not source.server_id:
            source.server_id = default_server_id(self.name)
        self.kafka.topic_prefix = self.kafka.topic_prefix or self.name
        # 55 + "_reverse": still a valid name
        self.cutover.reverse_name = self.cutover.reverse_name or f"{self.name[:55]}_reverse"
        return self

    @model_validator(mode="after")
    def _direct_needs_target(self) -> Self:
        if self.snapshot.mode == "direct" and self.target is None:
            raise setting_error(
                "snapshot.mode direct copies rows straight into the target, but there is no"
                " target section",
                "add a target: section (type, dsn), or use snapshot.mode: initial",
            )
        return self

    @property
    def consumer_group(self) -> str:
        return self.name

    def masked(self) -> dict[str, Any]:
        """The resolved configuration, defaults filled in, every secret shown as `***`."""
        masked: dict[str, Any] = _redact_tree(self.model_dump(mode="json"))
        return masked


def _redact_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _redact_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_tree(item) for item in value]
    return redact(value) if isinstance(value, str) else value


def json_schema() -> dict[str, Any]:
    """The JSON schema of the file, as committed in config/schema.json."""
    return {"$schema": SCHEMA_DIALECT, **Settings.model_json_schema()}


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
