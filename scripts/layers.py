#!/usr/bin/env python3
"""Checks failstop's layering: the floors of src/ and the arrows between files.

Every file of src/ belongs to a floor (its top-level module, see FLOORS). An
arrow runs from file A to file B when A names an item of B by a path: a
`use crate::...`, `use super::...` or `use child::...` tree, or a
`crate::...` / `super::...` path in code. Comments, string literals and
`#[cfg(test)] mod tests` (and files named tests.rs) are left out: tests may
look anywhere.

The rule: no arrow runs up a floor, and no set of files imports each other
in a circle (arrows within a floor are fine as long as they stay one-way).
Exit status 1 when the rule is broken, with each offending arrow named.

    python3 scripts/layers.py            # check src/, print the figures
    python3 scripts/layers.py --edges    # also list every arrow
    python3 scripts/layers.py --graph-only DIR   # figures only, no floors (any tree)
"""

import os
import re
import sys

# Bottom to top. A new top-level module must be given a floor here.
FLOORS = {
    "error": 0,
    "verdict": 0,
    "config": 1,
    "os": 2,
    "state": 3,
    "sync": 3,
    "watch": 4,
    "fatal": 5,
    "engine": 6,
    "api": 7,
    "ffi_support": 7,
    "tokio": 7,
    "unsupported": 7,
    "": 7,  # lib.rs, the crate root: the public API
}
FLOOR_NAMES = ["error, verdict", "config", "os", "state, sync", "watch", "fatal", "engine", "front ends"]


def module_of(rel):
    """src-relative path -> module path (list of segments)."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def strip_code(text):
    """Removes comments, string and char literals (keeps line structure)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or c == "'" and text.startswith("'\\", i):
            j = text.find("'", i + 2)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_tests(code):
    """Cuts an inline `#[cfg(test)] mod tests { ... }` (brace-matched)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
        if not m:
            return code
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[:m.start()] + code[j:]


def expand_use_tree(s):
    """'a::{b, c::{d as e, f}}' -> ['a::b', 'a::c::d', 'a::c::f']."""
    s = re.sub(r"\s+as\s+\w+", "", s)  # renames do not change the target
    s = re.sub(r"\s+", "", s)
    out = []

    def rec(prefix, tree):
        depth, start, items = 0, 0, []
        for k, ch in enumerate(tree):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(tree[start:k])
                start = k + 1
        items.append(tree[start:])
        for it in filter(None, items):
            b = it.find("{")
            if b >= 0:
                rec(prefix + it[:b], it[b + 1:it.rfind("}")])
            else:
                out.append(prefix + it)

    rec("", s)
    return out


def scan(root):
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".rs") and name != "tests.rs":
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                files[rel] = full
    modules = {tuple(module_of(rel)): rel for rel in files}
    edges = set()
    for rel, full in files.items():
        me = module_of(rel)
        code = drop_tests(strip_code(open(full, encoding="utf-8").read()))
        children = {m[len(me)] for m in modules if len(m) == len(me) + 1 and list(m[:len(me)]) == me}
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            paths.extend(expand_use_tree(m.group(1)))
        paths.extend(re.findall(r"\b((?:crate|super)(?:::[A-Za-z_]\w*)+)", code))
        for p in paths:
            segs = [x for x in p.split("::") if x]
            if not segs:
                continue
            if segs[0] == "crate":
                target = segs[1:]
            elif segs[0] in ("super", "self"):
                base = list(me)
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        base = base[:-1]
                    segs = segs[1:]
                target = base + segs
            elif segs[0] in children:
                target = me + segs
            else:
                continue  # std, libc, another crate, or a name already imported
            # The longest prefix of the path that is a file of ours.
            for k in range(len(target), -1, -1):
                hit = modules.get(tuple(target[:k]))
                if hit is not None:
                    break
            if hit is not None and hit != rel:
                edges.add((rel, hit))
    return sorted(files), sorted(edges)


def cycles(nodes, edges):
    """Strongly connected components with more than one file (Tarjan)."""
    graph = {n: [] for n in nodes}
    for a, b in edges:
        graph[a].append(b)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in nodes:
        if n not in index:
            visit(n)
    return out


def floor_of(rel):
    top = module_of(rel)[0] if module_of(rel) else ""
    return FLOORS.get(top)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    graph_only = "--graph-only" in argv
    rest = [a for a in argv if not a.startswith("--")]
    root = rest[0] if rest else os.path.join(here, "..", "src")
    nodes, edges = scan(root)
    circles = cycles(nodes, edges)
    print(f"layers: {len(nodes)} files, {len(edges)} arrows between them, {len(circles)} circle(s)")
    for c in circles:
        print(f"  circle of {len(c)} files: {', '.join(c)}")
    if "--edges" in argv:
        for a, b in edges:
            print(f"  {a} -> {b}")
    if graph_only:
        return 0
    bad = False
    unknown = sorted({module_of(n)[0] for n in nodes if floor_of(n) is None})
    for u in unknown:
        print(f"  no floor for top-level module {u!r}: add it to FLOORS in scripts/layers.py")
        bad = True
    up = [(a, b) for a, b in edges if floor_of(a) is not None and floor_of(b) is not None and floor_of(b) > floor_of(a)]
    print(f"layers: {len(up)} arrow(s) up a floor")
    for a, b in up:
        print(f"  {a} (floor {floor_of(a)}, {FLOOR_NAMES[floor_of(a)]}) -> {b} (floor {floor_of(b)}, {FLOOR_NAMES[floor_of(b)]})")
    for f in range(len(FLOOR_NAMES)):
        members = [n for n in nodes if floor_of(n) == f]
        print(f"  floor {f} ({FLOOR_NAMES[f]}): {len(members)} files")
    if circles or up or bad:
        print("layers: FAILED (see above)")
        return 1
    print("layers: ok (no circle, no arrow up a floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
