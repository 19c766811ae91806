"""`cdc schema`: the target DDL of a pipeline's tables, planned and applied."""
