#!/usr/bin/env python3
"""Layer check: the import graph of a crate's source files must have no cycle.

Usage: ci/layers.py [--graph] CRATE_SRC_DIR...

For every crate source directory (the one holding lib.rs or main.rs) this
draws a graph with one node per file and an edge A -> B when file A names an
item defined in module B: through a `use` (only if the imported name is used
in A's own code when the `use` is a `pub` re-export, which is a pass-through
and not a use), through a `crate::`, `super::` or `self::` path in code, or
through a path that starts with a child module A declares (`mod b;` then
`b::f()`). Declaring a module (`mod b;`) is no edge by itself: a parent
depends on a child only if it names something in it. Re-exports are
followed to the module that defines the item, so `crate::Error` is an edge
to `error.rs`, not to `lib.rs`. `#[cfg]` is ignored: every item counts, and
a `mod` chosen among several files by `#[cfg_attr(.., path = "..")]` is all
of them. Comments and string literals are skipped.

The check fails (exit 1), printing each cycle as the files of a strongly
connected component of more than one file, with the edges inside it. For
filemap's core crate it also fails if a file under `backend/` names the
public API module `region` or the type `FileMap`: the OS seam sits below the
API and must not reach up into it.

`--graph` also prints the layers: each file with the files it names, files
of one layer depending only on lower layers.
"""

import os
import re
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """The text with comments, string and char literals blanked out (line
    structure kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not re.match(
            r"[A-Za-z0-9_]", text[i - 1] if i else " "
        ):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use(tree):
    """`a::{b, c::{self, d}}` -> [['a','b'], ['a','c'], ['a','c','d']]; a
    trailing `as x` is dropped (the alias is returned as the name used)."""
    tree = re.sub(r"\s+as\s+", "@", tree)
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix, s):
        # split s on top-level commas
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0:
                head = part[:brace].rstrip(":")
                segs = [x for x in head.split("::") if x] if head else []
                walk(prefix + segs, part[brace + 1:part.rfind("}")])
            else:
                alias = None
                if "@" in part:
                    part, alias = part.split("@", 1)
                segs = [x for x in part.split("::") if x]
                full = prefix + segs
                if full and full[-1] == "self":
                    full = full[:-1]
                if full:
                    results.append((full, alias or full[-1]))

    walk([], tree)
    return results


class Crate:
    def __init__(self, src):
        self.src = os.path.normpath(src)
        root = None
        for name in ("lib.rs", "main.rs"):
            if os.path.exists(os.path.join(self.src, name)):
                root = os.path.join(self.src, name)
                break
        if root is None:
            raise SystemExit(f"layers: no lib.rs or main.rs in {src}")
        self.modules = defaultdict(list)  # module path tuple -> files
        self.file_module = {}  # file -> module path tuple
        self.code = {}  # file -> stripped text
        self.children = defaultdict(dict)  # file -> {child name: module path}
        self.reexports = defaultdict(dict)  # module path -> {name: abs path}
        self.uses = defaultdict(list)  # file -> [(abs path, name, public)]
        # A module with several files (`#[cfg_attr(.., path)]`): each file
        # and its descendants are one alternative, named by that file.
        self.alternative = {}
        self.load(root, (), None)

    def rel(self, path):
        return os.path.relpath(path, self.src)

    def load(self, path, module, alternative):
        if path in self.file_module:
            return
        self.alternative[path] = alternative
        with open(path, encoding="utf-8") as f:
            code = strip_code(f.read())
        self.file_module[path] = module
        self.modules[module].append(path)
        self.code[path] = code
        here = os.path.dirname(path)
        base = os.path.basename(path)
        if base in ("lib.rs", "main.rs", "mod.rs"):
            child_dir = here
        else:
            child_dir = os.path.join(here, base[:-3])
        # `mod x;` declarations with their attributes (path, cfg_attr path).
        for m in re.finditer(
            r"((?:#\[[^\]]*(?:\([^)]*\))?[^\]]*\]\s*)*)"
            r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;",
            code,
        ):
            attrs, name = m.group(1), m.group(2)
            # Paths are string literals, blanked in `code`: read the
            # original text.
            paths = self.attr_paths(path, name) if "path" in attrs else []
            files = []
            if paths:
                files = [os.path.normpath(os.path.join(here, p)) for p in paths]
            else:
                for cand in (os.path.join(child_dir, name + ".rs"),
                             os.path.join(child_dir, name, "mod.rs")):
                    if os.path.exists(cand):
                        files = [cand]
                        break
            child = module + (name,)
            self.children[path][name] = child
            for child_file in files:
                if os.path.exists(child_file):
                    alt = child_file if len(files) > 1 else alternative
                    self.load(child_file, child, alt)

    @staticmethod
    def attr_paths(file, name):
        """`path = ".."` values in the attributes of `mod name;` in `file`."""
        with open(file, encoding="utf-8") as f:
            original = f.read()
        m = re.search(
            r"((?:#\[(?:[^\[\]]|\[[^\]]*\])*\]\s*)+)(?:pub(?:\([^)]*\))?\s+)?mod\s+"
            + name + r"\s*;",
            original,
        )
        return re.findall(r'path\s*=\s*"([^"]+)"', m.group(1)) if m else []

    def inline_depth_at(self, code, pos):
        """How many inline `mod x { .. }` blocks enclose `pos`."""
        depth = 0
        stack = []
        brace = 0
        for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{|\{|\}", code[:pos]):
            tok = m.group(0)
            if tok.startswith("mod"):
                stack.append(brace)
                brace += 1
                depth += 1
            elif tok == "{":
                brace += 1
            else:
                brace -= 1
                if stack and stack[-1] == brace:
                    stack.pop()
                    depth -= 1
        return depth

    def absolute(self, file, segs, pos):
        """The absolute module path of `segs` as written in `file` at
        `pos`, or None when it is not a path into this crate."""
        module = self.file_module[file]
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return list(segs[1:])
        if head in ("super", "self"):
            inline = self.inline_depth_at(self.code[file], pos)
            cur = list(module)
            rest = list(segs)
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    if inline:
                        inline -= 1
                    elif cur:
                        cur.pop()
                    else:
                        return None
                rest.pop(0)
            if inline:
                # Inside an inline module of this file: still this file.
                return None
            return cur + rest
        if head in self.children[file]:
            return list(module) + list(segs)
        return None

    def resolve(self, path, seen=None):
        """The module paths defining what `path` (absolute) names."""
        seen = seen or set()
        key = tuple(path)
        if key in seen:
            return set()
        seen = seen | {key}
        module = ()
        rest = list(path)
        while rest and module + (rest[0],) in self.modules:
            module = module + (rest.pop(0),)
        if rest and rest[0] != "*" and rest[0] in self.reexports[module]:
            target = self.reexports[module][rest[0]]
            return self.resolve(target + rest[1:], seen)
        return {module}

    def collect_uses(self):
        for file, code in self.code.items():
            module = self.file_module[file]
            for m in re.finditer(
                r"(?:^|[;{}\]\s])((pub(?:\([^)]*\))?\s+)?use\s+([^;]+);)", code
            ):
                public = bool(m.group(2))
                for segs, name in expand_use(m.group(3)):
                    if segs[0] == "::":
                        continue
                    absolute = self.absolute(file, segs, m.start(1))
                    if absolute is None:
                        continue
                    self.uses[file].append((absolute, name, public, m.span(1)))
                    if public and name != "*":
                        self.reexports[module][name] = absolute

    def edges(self):
        self.collect_uses()
        graph = defaultdict(set)
        named = defaultdict(set)  # file -> the paths it names, for the rules
        for file, code in self.code.items():
            targets = []
            spans = []
            for absolute, name, public, span in self.uses[file]:
                spans.append(span)
                if public and name != "*":
                    outside = code[:span[0]] + code[span[1]:]
                    if not re.search(r"(?<![:\w])" + re.escape(name) + r"\b", outside):
                        continue
                targets.append(absolute)
            # Paths in code, outside `use` statements.
            masked = list(code)
            for a, b in spans:
                masked[a:b] = " " * (b - a)
            masked = "".join(masked)
            for m in re.finditer(
                r"(?<![:\w])((?:" + IDENT + r")(?:\s*::\s*(?:" + IDENT + r"))+)", masked
            ):
                segs = re.split(r"\s*::\s*", m.group(1))
                absolute = self.absolute(file, segs, m.start(1))
                if absolute is not None:
                    targets.append(absolute)
            own = self.file_module[file]
            alternative = self.alternative[file]
            for absolute in targets:
                named[file].add(tuple(absolute))
                for module in self.resolve(absolute) - {own}:
                    files = self.modules.get(module, [])
                    # Within one alternative, its own files only.
                    same = [t for t in files if alternative and self.alternative[t] == alternative]
                    for target in same or files:
                        if target != file:
                            graph[file].add(target)
        return graph, named


def tarjan(nodes, graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def layers(nodes, graph):
    """Layer number per file: 0 for files naming nothing, else one more
    than the highest file named (cycles collapsed)."""
    level = {}

    def depth(v, path=()):
        if v in level:
            return level[v]
        if v in path:
            return 0
        level[v] = 1 + max((depth(w, path + (v,)) for w in graph[v]), default=-1)
        return level[v]

    for v in nodes:
        depth(v)
    return level


def check(src, show_graph):
    crate = Crate(src)
    graph, named = crate.edges()
    nodes = set(crate.code)
    failures = []
    for comp in tarjan(nodes, graph):
        if len(comp) > 1:
            members = set(comp)
            lines = [f"cycle in {src}: " + ", ".join(crate.rel(f) for f in comp)]
            for f in comp:
                for t in sorted(graph[f] & members):
                    lines.append(f"    {crate.rel(f)} -> {crate.rel(t)}")
            failures.append("\n".join(lines))
    # The OS seam must not reach up into the public API.
    backend = os.path.join(crate.src, "backend") + os.sep
    if crate.modules.get(("backend",)) and ("region",) in crate.modules:
        for file in sorted(nodes):
            if not file.startswith(backend):
                continue
            if any(p[:1] == ("region",) or crate.resolve(list(p)) == {("region",)}
                   for p in named[file]):
                failures.append(f"{crate.rel(file)} names the public API module `region`")
            if re.search(r"\bFileMap\b", crate.code[file]):
                failures.append(f"{crate.rel(file)} names `FileMap`, the public API type")
    if show_graph:
        level = layers(nodes, graph)
        print(f"layers of {src} (each file names only files of lower layers):")
        for n in sorted(set(level.values()), reverse=True):
            files = sorted(crate.rel(f) for f in nodes if level[f] == n)
            print(f"  {n:2}: " + "  ".join(files))
        for f in sorted(nodes, key=lambda f: (-level[f], f)):
            if graph[f]:
                print(f"    {crate.rel(f)} -> " + ", ".join(sorted(crate.rel(t) for t in graph[f])))
    return failures


def main(argv):
    show = "--graph" in argv
    dirs = [a for a in argv if a != "--graph"]
    if not dirs:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    failures = []
    for src in dirs:
        found = check(src, show)
        failures += found
        if not found:
            print(f"layers: {src}: no cycle")
    for failure in failures:
        print("layers: " + failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
