"""The migration workflow around the stream, by step: assess, schema, verify,
cut over (and roll back), status. Each step speaks to the databases through
the engines the face gives it (`cdc.engine.Engine`), never to an engine package."""
