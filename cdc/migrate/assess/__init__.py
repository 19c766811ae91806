"""`cdc assess`: the checks a migration needs before it starts."""
