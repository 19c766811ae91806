"""`cdc cutover` and `cdc rollback`: move the writes to the target, and back."""
