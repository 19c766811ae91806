"""The face: wires engines, sources, publishers and sinks into the running daemon."""
