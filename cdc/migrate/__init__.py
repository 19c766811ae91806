"""The migration workflow around the stream: compare, verify, cut over."""
