#!/usr/bin/env python3
"""Independent ground truth for the indexer tests: walks a tree with os.walk (symlinks not
followed) and applies the default rules by hand: system-file names, and the .gitignore files
the corpus generator writes (`/target/`, `target/`, `*.log`, `node_modules/`, `.DS_Store`).
Prints JSON: files, dirs (excluding the root), symlinks, bytes (sum of regular-file sizes,
each hard-link name counted), ignored."""
import fnmatch, json, os, sys

SYSTEM = [".DS_Store", ".AppleDouble", ".Spotlight-V100", ".Trashes", ".fseventsd",
          ".TemporaryItems", ".Trash-*", "Thumbs.db", "ehthumbs.db", "desktop.ini",
          "$RECYCLE.BIN", "System Volume Information", "lost+found"]

def gitignore_rules(d):
    p = os.path.join(d, b".gitignore")
    if not os.path.isfile(p):
        return None
    dirs, files = set(), []
    for line in open(p, "rb").read().decode().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("/"):
            dirs.add(line.strip("/"))
        else:
            files.append(line)
    return dirs, files

def main(root, system_defaults=True, gitignore=True):
    out = dict(files=0, dirs=0, symlinks=0, bytes=0, ignored=0)
    def walk(d, rules):
        own = gitignore_rules(d) if gitignore else None
        active = rules + ([own] if own else [])
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            st = os.lstat(p)
            is_dir = os.path.isdir(p) and not os.path.islink(p)
            text = name.decode("utf-8", "surrogateescape")
            if system_defaults and any(fnmatch.fnmatchcase(text, g) for g in SYSTEM):
                out["ignored"] += 1
                continue
            if any((is_dir and text in r[0]) or any(fnmatch.fnmatchcase(text, g) for g in r[1])
                   for r in active):
                out["ignored"] += 1
                continue
            if os.path.islink(p):
                out["symlinks"] += 1
            elif is_dir:
                out["dirs"] += 1
                walk(p, active)
            elif os.path.isfile(p):
                out["files"] += 1
                out["bytes"] += st.st_size
    walk(os.fsencode(root), [])
    print(json.dumps(out))

if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], "--no-default-rules" not in args, "--no-gitignore" not in args)
