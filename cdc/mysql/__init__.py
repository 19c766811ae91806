"""MySQL/MariaDB source: binlog reading and fast row-image decoding."""
