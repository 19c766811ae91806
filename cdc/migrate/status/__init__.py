"""`cdc status`: where a pipeline stands."""
