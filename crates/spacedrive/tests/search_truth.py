#!/usr/bin/env python3
"""Independent ground truth for `spacedrive search`: walks ROOT with os.walk (symlinks not
followed) and prints, as JSON, the sorted relative paths (hex of the raw bytes) of every entry
below ROOT whose name contains all query terms. Terms: whitespace-separated, a "quoted span" is
one term; names and terms compared after NFKD, dropping combining marks, lowercasing.
Optional filters: --ext E, --larger-than N (files only), --kind image (by extension),
--modified-after UNIX_SECONDS."""
import json, os, sys, unicodedata

IMAGE_EXTS = {"jpg", "jpeg", "png", "heic", "gif", "webp", "bmp", "tif", "tiff"}

def norm(s):
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.category(c).startswith("M")).lower()

def terms(q):
    out, i = [], 0
    while i < len(q):
        if q[i].isspace():
            i += 1
            continue
        if q[i] == '"':
            end = q.find('"', i + 1)
            if end != -1 and q[i + 1:end].strip():
                out.append(q[i + 1:end]); i = end + 1
                continue
        j = i
        while j < len(q) and not q[j].isspace():
            j += 1
        out.append(q[i:j]); i = j
    return [n for n in (norm(t) for t in out) if n]

def main():
    root, query, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    opt = dict(zip(args[::2], args[1::2]))
    ts = terms(query)
    broot = os.fsencode(root)
    hits = []
    for dp, dns, fns in os.walk(broot):
        for name in dns + fns:
            p = os.path.join(dp, name)
            st = os.lstat(p)
            is_file = os.path.isfile(p) and not os.path.islink(p)
            text = norm(name.decode("utf-8", "replace"))
            if not all(t in text for t in ts):
                continue
            ext = text.rsplit(".", 1)[1] if "." in text else None
            if "--ext" in opt and (ext != opt["--ext"] or not (is_file or os.path.islink(p))):
                continue
            if "--larger-than" in opt and not (is_file and st.st_size > int(opt["--larger-than"])):
                continue
            if "--kind" in opt and not (is_file and ext in IMAGE_EXTS):
                continue
            if "--modified-after" in opt and not (st.st_mtime >= int(opt["--modified-after"])):
                continue
            hits.append(os.path.relpath(p, broot).hex())
    print(json.dumps(sorted(hits)))

main()
