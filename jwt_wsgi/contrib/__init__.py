"""Small helpers for frameworks, using their public APIs only."""
