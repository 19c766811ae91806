"""`cdc verify`: the target's tables compared with the source's, row for row."""
