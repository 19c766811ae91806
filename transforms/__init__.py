"""Row transforms applied between consume and apply."""
