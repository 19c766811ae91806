"""The MySQL/MariaDB target: the applier, its statements and its tables."""
