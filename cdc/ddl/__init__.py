"""The engine-neutral vocabulary of target DDL: a table definition, its statements, defaults
and type notes. Each engine renders it in its own dialect (`cdc.postgres.ddl`, `cdc.mysql.ddl`)."""
