"""Evidence: the image behind every verdict (store, retention, writer thread, export)."""
