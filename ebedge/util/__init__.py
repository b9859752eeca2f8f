"""Small shared helpers: atomic files, statistics, ETA."""
