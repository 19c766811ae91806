"""The PostgreSQL target: the applier, its COPY encoding and the direct copy's progress."""
