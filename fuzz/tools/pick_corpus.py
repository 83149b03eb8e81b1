#!/usr/bin/env python3
"""Picks a small corpus out of a large one, by edge coverage.

    pick_corpus.py CONTROL_FILE OUT_DIR [MAX_FILES]

CONTROL_FILE is a libFuzzer merge control file, written by running a target binary with
`-set_cover_merge=1 -use_counters=0 -merge_control_file=CONTROL_FILE EMPTY_DIR CORPUS_DIR` (after
`cargo fuzz cmin`): in set-cover mode its `FT` lines list every feature (edge, with use_counters=0)
an input reaches, not only the new ones. Greedy set cover: the file adding the most features not
yet covered (the smaller on a tie) until nothing is added or MAX_FILES (default 40) are kept. The
kept files are copied into OUT_DIR.
"""
import os, shutil, sys

control, out = sys.argv[1], sys.argv[2]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 40
lines = open(control).read().splitlines()
count = int(lines[0])
paths = lines[2:2 + count]
edges, sizes = {}, {}
for line in lines[2 + count:]:
    kind, idx, *rest = line.split()
    if kind == "STARTED":
        sizes[int(idx)] = int(rest[0])
    elif kind == "FT":
        edges[int(idx)] = set(rest)

every = set().union(*edges.values()) if edges else set()
kept, covered = [], set()
while len(kept) < limit:
    best = max(
        (i for i in edges if i not in kept),
        key=lambda i: (len(edges[i] - covered), -sizes.get(i, 0)),
        default=None,
    )
    if best is None or not edges[best] - covered:
        break
    kept.append(best)
    covered |= edges[best]

os.makedirs(out, exist_ok=True)
for i in kept:
    shutil.copy(paths[i], os.path.join(out, os.path.basename(paths[i])))
print(f"kept {len(kept)} of {count} files, reaching {len(covered)} of {len(every)} features")
