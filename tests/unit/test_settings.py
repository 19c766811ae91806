"""The pipeline configuration: examples, defaults, and what a user reads when a file is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdc.secrets import MysqlDsn, PostgresDsn, forget_secrets, redact
from cdc.settings import (
    MysqlSource,
    PostgresSource,
    PostgresTarget,
    Settings,
    default_server_id,
    json_schema,
)
from cdc.settings_issues import ConfigError, ConfigIssue
from cdc.settings_load import load_settings, parse_settings
from cdc.settings_names import TableFilter
from tests.conftest import ROOT

PASSWORD = "Sup3r-s3cret-pw"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    forget_secrets()
    yield
    forget_secrets()


def minimal() -> dict[str, Any]:
    return {
        "name": "orders",
        "source": {
            "type": "postgres",
            "dsn": f"postgresql://cdc:{PASSWORD}@db.internal:5432/shop",
            "tables": ["public.orders", "public.customers"],
        },
        "kafka": {"bootstrap_servers": "kafka:9092"},
    }


def write(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def issues_of(tmp_path: Path, data: dict[str, Any] | str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, data))
    assert PASSWORD not in str(caught.value)
    return caught.value.issues


def only_issue(tmp_path: Path, data: dict[str, Any] | str) -> ConfigIssue:
    issues = issues_of(tmp_path, data)
    assert len(issues) == 1, issues
    return issues[0]


# --- the committed files --------------------------------------------------------------------


@pytest.mark.parametrize("example", ["pg-to-pg.yaml", "mysql-to-pg.yaml", "pg-to-mysql.yaml"])
def test_every_example_config_is_valid(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("SHOP_SOURCE_PASSWORD", "ORDERS_MYSQL_PASSWORD", "KAFKA_PASSWORD"):
        monkeypatch.setenv(variable, PASSWORD)
    monkeypatch.setenv("BILLING_PG_PASSWORD", PASSWORD)
    monkeypatch.setenv("SHOP_TARGET_DSN", f"postgresql://cdc:{PASSWORD}@pg16.internal/shop")
    monkeypatch.setenv("BILLING_MYSQL_DSN", f"mysql://cdc:{PASSWORD}@mysql.internal/billing")
    (tmp_path / "orders-target.dsn").write_text(f"postgresql://cdc:{PASSWORD}@pg.internal/orders\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    settings = load_settings(ROOT / "config" / example)

    assert PASSWORD not in json.dumps(settings.masked())
    assert PASSWORD not in repr(settings)


def test_committed_schema_matches_the_models() -> None:
    committed = json.loads((ROOT / "config" / "schema.json").read_text())
    assert committed == json_schema(), (
        "config/schema.json is stale: run `.venv/bin/cdc config schema > config/schema.json`"
    )


# --- values and defaults --------------------------------------------------------------------


def test_defaults_derive_from_the_name(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, minimal()))
    assert isinstance(settings.source, PostgresSource)
    assert settings.source.slot_name == "orders"
    assert settings.source.publication == "orders"
    assert settings.source.heartbeat_interval_s == 10
    assert settings.kafka.topic_prefix == "orders"
    assert (settings.kafka.partitions, settings.kafka.replication_factor) == (6, 1)
    assert settings.consumer_group == "orders"
    assert settings.target is None
    assert settings.snapshot.mode == "initial"
    assert (settings.snapshot.parallelism, settings.snapshot.chunk_rows) == (4, 100_000)
    assert settings.metrics.address == ("127.0.0.1", 9187)
    assert (settings.log.format, settings.log.level) == ("json", "info")


def test_mysql_source_defaults(tmp_path: Path) -> None:
    data = minimal()
    data["source"] = {"type": "mysql", "dsn": "mysql://cdc:pw@h/shop", "tables": ["shop.a"]}
    data["source"]["zero_dates"] = None  # an unquoted YAML null
    settings = load_settings(write(tmp_path, data))
    assert isinstance(settings.source, MysqlSource)
    assert settings.source.server_id == default_server_id("orders")
    assert 4_242_000_000 <= settings.source.server_id < 4_292_000_000
    assert settings.source.zero_dates == "null"
    assert default_server_id("orders") != default_server_id("orders_2")


def test_explicit_values_win_over_derived_defaults(tmp_path: Path) -> None:
    data = minimal()
    data["source"] |= {"slot_name": "slot_a", "publication": "pub_a"}
    data["kafka"]["topic_prefix"] = "shop.v2"
    settings = load_settings(write(tmp_path, data))
    assert isinstance(settings.source, PostgresSource)
    assert (settings.source.slot_name, settings.source.publication) == ("slot_a", "pub_a")
    assert settings.kafka.topic_prefix == "shop.v2"


def test_tables_list_and_patterns_select_tables(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, minimal()))
    assert settings.source.selects("public", "orders")
    assert not settings.source.selects("public", "audit")
    data = minimal()
    data["source"]["tables"] = {
        "include": ["public.*", "billing.inv*"],
        "exclude": ["public.tmp_*"],
    }
    source = load_settings(write(tmp_path, data)).source
    assert isinstance(source.tables, TableFilter)
    assert source.selects("public", "audit")
    assert source.selects("billing", "invoices")
    assert not source.selects("public", "tmp_import")
    assert not source.selects("billing", "payments")


def test_target_conflict_policy_per_table(tmp_path: Path) -> None:
    data = minimal()
    data["target"] = {
        "type": "postgres",
        "dsn": "host=new.internal dbname=shop user=cdc",
        "conflict": "last-writer-wins",
        "tables": {"public.orders": {"conflict": "error"}},
    }
    target = load_settings(write(tmp_path, data)).target
    assert isinstance(target, PostgresTarget)
    assert target.conflict_for("public", "orders") == "error"
    assert target.conflict_for("public", "customers") == "last-writer-wins"
    assert target.create_tables is False


def test_env_interpolation_and_escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PASSWORD", PASSWORD)
    monkeypatch.setenv("KAFKA_HOST", "broker-1")
    data = minimal()
    data["source"]["dsn"] = "postgresql://cdc:${PG_PASSWORD}@db/shop"
    data["kafka"]["bootstrap_servers"] = "${KAFKA_HOST}:9092"
    data["transforms"] = [
        {"type": "add_column", "table": "public.orders", "column": "tag", "value": "$${NOT_A_VAR}"}
    ]
    settings = load_settings(write(tmp_path, data))
    assert isinstance(settings.source.dsn, PostgresDsn)
    assert settings.source.dsn.get_secret_value() == f"postgresql://cdc:{PASSWORD}@db/shop"
    assert settings.kafka.bootstrap_servers == "broker-1:9092"
    assert settings.transforms[0].type == "add_column"
    assert settings.transforms[0].options["value"] == "${NOT_A_VAR}"


def test_dsn_file_relative_to_the_config_or_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pg.dsn").write_text(f"  postgresql://cdc:{PASSWORD}@db/shop\n")
    data = minimal()
    del data["source"]["dsn"]
    data["source"]["dsn_file"] = "pg.dsn"
    settings = load_settings(write(tmp_path, data))
    assert settings.source.dsn.get_secret_value() == f"postgresql://cdc:{PASSWORD}@db/shop"
    assert settings.source.dsn_file == tmp_path / "pg.dsn"

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "pg.dsn").write_text("postgresql://cdc:other@db/shop")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = load_settings(write(tmp_path, data))
    assert settings.source.dsn.get_secret_value() == "postgresql://cdc:other@db/shop"


def test_kafka_sasl_password_file(tmp_path: Path) -> None:
    (tmp_path / "kafka.pw").write_text(f"kafka-{PASSWORD}\n")
    data = minimal()
    data["kafka"]["sasl"] = {"username": "cdc", "password_file": "kafka.pw"}
    settings = load_settings(write(tmp_path, data))
    assert settings.kafka.client_config()["sasl.password"] == f"kafka-{PASSWORD}"
    assert f"kafka-{PASSWORD}" not in json.dumps(settings.masked())
    assert redact(f"refused kafka-{PASSWORD}") == "refused ***"

    data["kafka"]["sasl"]["password"] = "also"
    assert "set password or password_file, not both" in only_issue(tmp_path, data).message
    del data["kafka"]["sasl"]["password"]
    data["kafka"]["sasl"]["password_file"] = "missing.pw"
    issue = only_issue(tmp_path, data)
    assert f"cannot read {tmp_path / 'missing.pw'}" in issue.message, issue.message


def test_masked_and_repr_hide_every_secret(tmp_path: Path) -> None:
    data = minimal()
    data["kafka"]["producer"] = {"sasl.password": "kafka-" + PASSWORD, "acks": "all"}
    data["target"] = {"type": "mysql", "dsn": f"mysql://cdc:{PASSWORD}x@h/shop"}
    settings = load_settings(write(tmp_path, data))
    masked = settings.masked()
    assert masked["source"]["dsn"] == "postgresql://cdc:***@db.internal:5432/shop"
    assert masked["kafka"]["producer"] == {"sasl.password": "***", "acks": "all"}
    assert masked["target"]["dsn"] == "mysql://cdc:***@h/shop"
    for text in (json.dumps(masked), repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in text
    # The real values stay available to the code that connects.
    assert settings.kafka.producer_config()["sasl.password"] == "kafka-" + PASSWORD
    assert isinstance(settings.target and settings.target.dsn, MysqlDsn)
    # Loading registered them, so log lines and messages are redacted too.
    assert redact(f"auth failed for {PASSWORD}") == "auth failed for ***"


# --- errors: each names the key and the fix, never the value ------------------------------


def test_missing_key(tmp_path: Path) -> None:
    data = minimal()
    del data["kafka"]
    issue = only_issue(tmp_path, data)
    assert issue.path == "kafka"
    assert "required key kafka is missing" in issue.message
    assert "bootstrap_servers" in issue.hint


def test_missing_dsn_asks_for_dsn_or_dsn_file(tmp_path: Path) -> None:
    data = minimal()
    del data["source"]["dsn"]
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.dsn"
    assert "missing" in issue.message


def test_wrong_type_names_what_was_found_but_not_the_value(tmp_path: Path) -> None:
    data = minimal()
    data["kafka"]["partitions"] = [PASSWORD]
    data["source"]["heartbeat_interval_s"] = PASSWORD
    issues = issues_of(tmp_path, data)
    assert [i.path for i in issues] == ["source.heartbeat_interval_s", "kafka.partitions"]
    assert "must be a valid integer, got a list" in issues[1].message


def test_unknown_key_lists_allowed_keys_and_suggests(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["slot"] = "x"
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.slot"
    assert "unknown key slot" in issue.message
    assert "allowed keys: type, dsn, dsn_file, tables, slot_name, publication" in issue.message
    assert issue.hint == "did you mean slot_name?"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    data = minimal()
    data["kafak"] = {}
    issue = only_issue(tmp_path, data)
    assert issue.path == "kafak"
    assert issue.hint == "did you mean kafka?"


def test_key_of_the_other_engine_says_so(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["server_id"] = 7
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.server_id"
    assert "type: mysql" in issue.hint


def test_unknown_source_type(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["type"] = "oracle"
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.type"
    assert "postgres or mysql" in issue.message


def test_bad_literal_suggests_the_close_value(tmp_path: Path) -> None:
    data = minimal()
    data["target"] = {"type": "postgres", "dsn": "postgresql://u@h/db", "conflict": "source_wins"}
    issue = only_issue(tmp_path, data)
    assert issue.path == "target.conflict"
    assert "source-wins, target-wins, last-writer-wins, error" in issue.message
    assert issue.hint == "did you mean source-wins?"


def test_bad_table_name_points_at_the_list_item(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["tables"] = ["public.a", "public.b", "orders"]
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.tables[2]"
    assert "schema.table" in issue.message


def test_tables_of_the_wrong_shape(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["tables"] = "public.orders"
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.tables"
    assert "include/exclude" in issue.message


def test_bad_target_table_key_is_quoted_in_the_path(tmp_path: Path) -> None:
    data = minimal()
    data["target"] = {
        "type": "postgres",
        "dsn": "postgresql://u@h/db",
        "tables": {"public.orders": {"conflict": "error", "mode": "x"}},
    }
    issue = only_issue(tmp_path, data)
    assert issue.path == 'target.tables["public.orders"].mode'


@pytest.mark.parametrize(
    ("name", "suggestion"), [("Orders-Pipeline", "orders_pipeline"), ("x" * 64, "x" * 63)]
)
def test_name_must_be_a_valid_slot_name(tmp_path: Path, name: str, suggestion: str) -> None:
    data = minimal()
    data["name"] = name
    issue = only_issue(tmp_path, data)
    assert issue.path == "name"
    assert "lowercase letters, digits or underscores" in issue.message
    assert suggestion in issue.hint


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"type": "postgres", "dsn": f"mysql://u:{PASSWORD}@h/db"}, "set type: mysql"),
        ({"type": "postgres", "dsn": f"host=h password={PASSWORD} hots=x"}, "'host'"),
        ({"type": "postgres", "dsn": f"postgresql://u:{PASSWORD} x@h/db"}, "postgresql://"),
        ({"type": "mysql", "dsn": f"postgresql://u:{PASSWORD}@h/db"}, "set type: postgres"),
        ({"type": "mysql", "dsn": f"mysql://h:{PASSWORD}/db"}, "mysql://user:password@"),
    ],
)
def test_bad_dsn_names_the_field_and_the_expected_form(
    tmp_path: Path, source: dict[str, str], expected: str
) -> None:
    data = minimal()
    data["source"] = {**source, "tables": ["a.b"]}
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.dsn"
    assert expected in issue.hint


def test_dsn_and_dsn_file_together(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["dsn_file"] = "pg.dsn"
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.dsn_file"
    assert "not both" in issue.message


def test_unreadable_secret_file_names_the_path_and_the_os_error(tmp_path: Path) -> None:
    data = minimal()
    del data["source"]["dsn"]
    data["source"]["dsn_file"] = "missing.dsn"
    data["kafka"]["partitions"] = 0  # still reported: one run shows every problem
    issues = issues_of(tmp_path, data)
    assert [i.path for i in issues] == ["source.dsn_file", "kafka.partitions"]
    assert issues[0].message == (
        f"cannot read {tmp_path / 'missing.dsn'}: No such file or directory"
    )


def test_bad_dsn_in_a_secret_file_is_reported_at_dsn_file(tmp_path: Path) -> None:
    (tmp_path / "pg.dsn").write_text(f"mysql://u:{PASSWORD}@h/db")
    data = minimal()
    del data["source"]["dsn"]
    data["source"]["dsn_file"] = str(tmp_path / "pg.dsn")
    issue = only_issue(tmp_path, data)
    assert issue.path == "source.dsn_file"
    assert issue.message.startswith(f"{tmp_path / 'pg.dsn'}: expected a PostgreSQL")


def test_missing_env_var_names_the_variable_and_the_path(tmp_path: Path) -> None:
    data = minimal()
    data["source"]["dsn"] = "postgresql://cdc:${CDC_TEST_UNSET_VAR}@db/shop"
    data["kafka"]["bootstrap_servers"] = "${CDC_TEST_UNSET_HOST}:9092"
    issues = issues_of(tmp_path, data)
    assert [(i.path, i.message) for i in issues] == [
        ("source.dsn", "environment variable CDC_TEST_UNSET_VAR is not set"),
        ("kafka.bootstrap_servers", "environment variable CDC_TEST_UNSET_HOST is not set"),
    ]
    assert "export CDC_TEST_UNSET_VAR" in issues[0].hint


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    issue = only_issue(tmp_path, f"name: orders\nsource:\n  dsn: 'postgresql://u:{PASSWORD}\n")
    assert issue.path == str(tmp_path / "pipeline.yaml")
    assert issue.message.startswith("YAML syntax error at line 4, column 1")


def test_tab_indentation_hint(tmp_path: Path) -> None:
    issue = only_issue(tmp_path, "name: orders\nsource:\n\ttype: postgres\n")
    assert "line 3, column 1" in issue.message
    assert "tabs" in issue.hint


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    issue = only_issue(tmp_path, "name: a\nname: b\n")
    assert issue.message == "duplicate key 'name' at line 2, column 1"


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml")
    assert [str(i) for i in caught.value.issues] == [
        f"{tmp_path / 'nope.yaml'}: file not found (hint: check the path)"
    ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n"])
def test_empty_or_non_mapping_file(tmp_path: Path, text: str) -> None:
    issue = only_issue(tmp_path, text)
    assert issue.path == str(tmp_path / "pipeline.yaml")


def test_kafka_passthrough_rejects_keys_cdc_sets(tmp_path: Path) -> None:
    data = minimal()
    data["kafka"]["consumer"] = {"group.id": "other"}
    issue = only_issue(tmp_path, data)
    assert issue.path == "kafka.consumer"
    assert "group.id is set by cdc" in issue.message


def test_host_port_checks(tmp_path: Path) -> None:
    data = minimal()
    data["kafka"]["bootstrap_servers"] = ["k1:9092", "k2"]
    data["metrics"] = {"listen": "9187"}
    issues = issues_of(tmp_path, data)
    assert [(i.path, i.message) for i in issues] == [
        ("kafka.bootstrap_servers", "must be host:port"),
        ("metrics.listen", "must be host:port"),
    ]
    data = minimal()
    data["kafka"]["bootstrap_servers"] = ["k1:9092", "k2:9093"]
    data["metrics"] = {"listen": "[::1]:0"}
    data["log"] = {"level": "DEBUG"}
    settings = parse_settings(data)
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9093"
    assert settings.metrics.address == ("::1", 0)
    assert settings.log.level == "debug"


def test_every_model_forbids_unknown_keys() -> None:
    schema = json_schema()
    objects = [s for s in [schema, *schema["$defs"].values()] if s.get("type") == "object"]
    open_ones = {s["title"] for s in objects if s.get("additionalProperties") is not False}
    # Transform options belong to each transform; the transforms registry checks them.
    assert open_ones == {"TransformSettings"}


def test_settings_can_be_built_in_code() -> None:
    settings = Settings.model_validate(minimal())
    assert settings.source.dsn == PostgresDsn.parse(minimal()["source"]["dsn"])


def test_yaml_merge_keys_work_and_may_be_overridden(tmp_path: Path) -> None:
    text = (
        "name: orders\n"
        "source: &src {type: postgres, dsn: 'postgresql://u@h/db', tables: [a.b]}\n"
        "kafka: {bootstrap_servers: 'k:1'}\n"
        "target:\n  <<: *src\n  tables: {}\n"
    )
    settings = load_settings(write(tmp_path, text))
    assert isinstance(settings.target, PostgresTarget)
    assert settings.target.tables == {}


def test_section_of_the_wrong_kind(tmp_path: Path) -> None:
    data = minimal()
    data["snapshot"] = 5
    issue = only_issue(tmp_path, data)
    assert (issue.path, issue.message) == ("snapshot", "must be a mapping of keys, got a number")


def test_direct_snapshot_needs_a_target(tmp_path: Path) -> None:
    data = {**minimal(), "snapshot": {"mode": "direct"}}
    issue = only_issue(tmp_path, data)
    assert "snapshot.mode direct" in issue.message and "no target section" in issue.message
    assert "add a target" in issue.hint
    data["target"] = {"type": "postgres", "dsn": f"postgresql://cdc:{PASSWORD}@pg.internal/shop"}
    assert load_settings(write(tmp_path, data)).snapshot.mode == "direct"


def test_sink_consumers_are_static_members_named_by_sink_instance_id(tmp_path: Path) -> None:
    data = {**minimal(), "sink": {"workers": 2, "instance_id": "db host"}}
    issue = only_issue(tmp_path, data)
    assert issue.path == "sink.instance_id"
    # one group.instance.id for several consumers would have them fence each other
    data = minimal()
    data["kafka"]["consumer"] = {"group.instance.id": "mine"}
    issue = only_issue(tmp_path, data)
    assert issue.path == "kafka.consumer"
    assert "group.instance.id is set by cdc" in issue.message and "sink.instance_id" in issue.hint
    data = {**minimal(), "sink": {"instance_id": "db-2.example"}}
    assert load_settings(write(tmp_path, data)).sink.instance_id == "db-2.example"
