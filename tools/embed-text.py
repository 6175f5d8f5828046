#!/usr/bin/env python3
"""embed-text.py IN OUT SYMBOL: write a C file defining `const char SYMBOL[]`, the
text of IN (used for data/images.toml, the catalogue `qqmgr init` reads)."""
import sys

src, out, sym = sys.argv[1:4]
data = open(src, "rb").read()
data.decode("utf-8")   # the catalogue is UTF-8 text
with open(out, "w") as f:
    f.write(f"/* generated from {src.split('/')[-1]} by tools/embed-text.py */\n")
    f.write(f"extern const char {sym}[];\nconst char {sym}[] =\n")
    for line in data.splitlines(keepends=True):
        esc = "".join(chr(b) if 32 <= b < 127 and chr(b) not in '\\"?' else f"\\{b:03o}" for b in line)
        f.write(f'    "{esc}"\n')
    f.write("    ;\n")
