"""Training methods, one module each. Every module registers its recipes in the catalog
(`@method(...)` from ebedge.config.catalog) and imports torch only inside them, so the catalog
lists every method without loading torch."""
