"""bench/RESULTS.md is made of sections, each written by one benchmark between its own
markers; a benchmark replaces its section and leaves the others as they are.

  write_section(path, name, lines)  replaces (or appends) the section NAME
"""
import os

TITLE = "# Portcullis benchmark results\n"


def markers(name, writer):
    return (f"<!-- BEGIN {name} SECTION: written by {writer}; edits inside are lost -->",
            f"<!-- END {name} SECTION -->")


def write_section(path, name, writer, lines):
    begin, end = markers(name, writer)
    section = "\n".join([begin, *lines, end])
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = TITLE
    b = text.find(f"<!-- BEGIN {name} SECTION")
    e = text.find(f"<!-- END {name} SECTION -->")
    if b >= 0 and e > b:
        text = text[:b] + section + text[e + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
