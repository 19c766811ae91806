"""PostgreSQL source: logical replication stream, pgoutput decoder, slots, snapshot."""
