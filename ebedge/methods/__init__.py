"""Training methods, one module each. Every module registers its recipes in the catalog
(`@method(...)` from ebedge.config.catalog) and imports torch only inside them. Importing this
package imports each of its modules, so every method is registered (`import ebedge` does it, as
torchvision's import registers its models), and the catalog lists them without loading torch."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg:
        importlib.import_module(__name__ + "." + _module.name)
