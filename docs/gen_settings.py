"""Regenerate the settings table in docs/settings.md from ebedge.config.spec (run from the repo root).

`python docs/gen_settings.py` rewrites the text between the two markers; tests/config/test_spec.py
fails while the page and the spec differ. A MkDocs hook can call `markdown_table()` the same way."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ebedge.config.spec import markdown_table  # noqa: E402

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "settings.md")
BEGIN, END = "<!-- settings table: generated -->\n", "<!-- end of settings table -->\n"


def render(text):
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + markdown_table() + END + rest.split(END, 1)[1]


if __name__ == "__main__":
    with open(PAGE) as f:
        page = render(f.read())
    with open(PAGE, "w") as f:
        f.write(page)
