#!/usr/bin/env python3
"""Independent ground truth for `spacedrive dupes`: walks ROOT (symbolic links neither followed
nor counted), takes each non-empty regular file's inode once, and groups inodes whose bytes are
equal (SHA-256 of the whole file, then size). Prints JSON: dup_groups, files_in_groups (distinct
inodes in groups), redundant (files_in_groups - dup_groups), redundant_bytes, and groups: per
group the sorted hex of every name (hard links included) relative to ROOT, groups sorted."""
import hashlib, json, os, stat, sys
from collections import defaultdict

def main(root):
    broot = os.fsencode(root)
    names = defaultdict(list)   # inode -> every name of it
    size_of = {}
    for dirpath, _dirs, files in os.walk(broot):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                continue
            names[st.st_ino].append(os.path.relpath(p, broot))
            size_of[st.st_ino] = (st.st_size, p)
    by_bytes = defaultdict(list)
    for ino, (size, p) in size_of.items():
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        by_bytes[(size, h.digest())].append(ino)
    groups = [(size, inos) for (size, _), inos in by_bytes.items() if len(inos) > 1]
    out = dict(
        dup_groups=len(groups),
        files_in_groups=sum(len(inos) for _, inos in groups),
        redundant=sum(len(inos) - 1 for _, inos in groups),
        redundant_bytes=sum(size * (len(inos) - 1) for size, inos in groups),
        groups=sorted(sorted(n.hex() for ino in inos for n in names[ino]) for _, inos in groups),
    )
    print(json.dumps(out))

if __name__ == "__main__":
    main(sys.argv[1])
