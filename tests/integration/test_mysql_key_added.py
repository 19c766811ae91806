"""A primary key added to a MariaDB table (as `cdc assess` advises for a table
without one) while rows written before it are still in the binlog ahead of the
source: the source decodes and publishes those rows with the key they had
(every column), and the rows after the ALTER with the new key."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from cdc.topics import table_topic
from tests.integration.conftest import my_execute
from tests.integration.pipeline import TopicReader, mysql_pipeline, running_source


def test_rows_before_an_added_key_keep_the_key_they_had(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    my_execute(mysql_dsn, "CREATE TABLE keyless (name VARCHAR(20), n INT)")
    my_execute(mysql_dsn, "INSERT INTO keyless VALUES ('snapshot', 0)")
    settings = mysql_pipeline(
        tmp_path, topic_prefix, mysql_dsn, kafka_bootstrap, [f"{database}.keyless"]
    )
    reader = TopicReader(kafka_bootstrap, table_topic(topic_prefix, database, "keyless"))
    try:
        with running_source(settings):
            assert len(reader.read_until(1)) == 1
        # pending in the binlog while the source is down: two rows without a
        # key, the key added, then a row with it
        my_execute(mysql_dsn, "INSERT INTO keyless VALUES ('before', 1), ('before', 2)")
        my_execute(
            mysql_dsn, "ALTER TABLE keyless ADD COLUMN id INT AUTO_INCREMENT PRIMARY KEY FIRST"
        )
        my_execute(mysql_dsn, "INSERT INTO keyless (name, n) VALUES ('after', 3)")
        with running_source(settings):
            reader.read_until(4)
        keys = [key for key, _ in reader.envelopes()]
    finally:
        reader.close()
    assert keys == [
        {"name": "snapshot", "n": 0},
        {"name": "before", "n": 1},
        {"name": "before", "n": 2},
        {"id": 4},
    ], keys
