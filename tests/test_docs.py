"""Every document the code points to is in the repository."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRITTEN = ("model-card.md",)  # Markdown that ebedge writes (`ebedge report --format model-card`), not a document


def _sources():
    for top in ("ebedge", "meters"):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if name.endswith(".py"):
                    yield os.path.join(folder, name)


def test_docstring_paths_name_files_that_exist():
    cited, bare = set(), []
    for path in _sources():
        with open(path) as f:
            text = f.read()
        for name in re.findall(r"[A-Za-z0-9_./-]+\.md\b", text):
            if name.startswith("docs/"):
                cited.add(name)
            elif name != "README.md" and name not in WRITTEN:
                bare.append("%s: %s" % (os.path.relpath(path, ROOT), name))
    assert {"docs/DESIGN.md", "docs/reference/jetson-power-sensing.md"} <= cited
    assert [c for c in sorted(cited) if not os.path.isfile(os.path.join(ROOT, c))] == []
    assert bare == []  # a document is named by its path from the repository root
