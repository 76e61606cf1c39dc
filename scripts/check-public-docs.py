#!/usr/bin/env python3
"""Every `public`/`open` declaration in Sources/ASRKit and Sources/ASRBatch (the libraries people import) must carry a DocC `///` comment (or a `/** */` block).

Walks Sources/{ASRKit,ASRBatch}/**/*.swift. A declaration line is one that starts, after optional attributes (`@inlinable`,
`@available(macOS 13, *)`, ...) and modifiers, with `public` or `open`. `public extension` lines are skipped (their
members are still checked). The nearest preceding line that is not an attribute (attributes may span several lines)
must be a `///` line or the end of a `/** */` block. Offenders are printed as `path:line: declaration`; exit 1 if any.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCES = [os.path.join(ROOT, "Sources", name) for name in ("ASRKit", "ASRBatch")]

# One attribute: `@name`, optionally with a (possibly nested) parenthesised argument on the same line.
ATTR = r"@[\w.]+(?:\((?:[^()]|\([^()]*\))*\))?"
MODIFIERS = r"(?:(?:final|nonisolated|override|static|class|convenience|required|indirect|mutating|nonmutating)\s+)*"
DECL = re.compile(r"^(?:" + ATTR + r"\s*)*" + MODIFIERS + r"(public|open)\b(?!\s*\()")
DECL_SET = re.compile(r"^(?:" + ATTR + r"\s*)*" + MODIFIERS + r"(public|open)(?=\s*\(set\))")
EXTENSION = re.compile(r"^(?:" + ATTR + r"\s*)*public\s+extension\b")


def code_lines(lines):
    """For each line, whether it starts outside a block comment and a multi-line string literal."""
    flags = []
    in_block = in_string = False
    for line in lines:
        flags.append(not in_block and not in_string)
        s = line
        i = 0
        while i < len(s):
            if in_block:
                end = s.find("*/", i)
                if end < 0:
                    break
                in_block, i = False, end + 2
            elif in_string:
                end = s.find('"""', i)
                if end < 0:
                    break
                in_string, i = False, end + 3
            elif s.startswith("//", i):
                break
            elif s.startswith("/*", i):
                in_block, i = True, i + 2
            elif s.startswith('"""', i):
                in_string, i = True, i + 3
            elif s[i] == '"':
                end = i + 1
                while end < len(s) and s[end] != '"':
                    end += 2 if s[end] == "\\" else 1
                i = end + 1
            else:
                i += 1
    return flags


def attribute_lines(lines, is_code):
    """Indices of lines that belong only to attributes (standalone `@...` lines, with their continuation lines when
    the argument list spans several lines)."""
    marked = set()
    i = 0
    while i < len(lines):
        st = lines[i].strip()
        if is_code[i] and st.startswith("@") and not DECL.match(st) and not DECL_SET.match(st):
            # Attribute-only line if, after removing complete attributes, nothing remains but an argument list left
            # open (continued on the following lines).
            rest = re.sub(r"^(?:" + ATTR + r"\s*)*", "", st)
            if rest == "" or rest.startswith("("):
                depth = st.count("(") - st.count(")")
                marked.add(i)
                while depth > 0 and i + 1 < len(lines):
                    i += 1
                    marked.add(i)
                    depth += lines[i].count("(") - lines[i].count(")")
        i += 1
    return marked


def check(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    is_code = code_lines(lines)
    attrs = attribute_lines(lines, is_code)
    found, missing = 0, []
    for i, line in enumerate(lines):
        st = line.strip()
        if not is_code[i] or i in attrs or not (DECL.match(st) or DECL_SET.match(st)):
            continue
        if EXTENSION.match(st):
            continue
        found += 1
        j = i - 1
        while j >= 0 and j in attrs:
            j -= 1
        prev = lines[j].strip() if j >= 0 else ""
        if not (prev.startswith("///") or prev.endswith("*/") and not prev.startswith("//")):
            missing.append(f"{os.path.relpath(path, ROOT)}:{i + 1}: {st}")
    return found, missing


def main():
    total, offenders = 0, []
    for sources in SOURCES:
        for dirpath, dirnames, filenames in os.walk(sources):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".swift"):
                    n, missing = check(os.path.join(dirpath, name))
                    total += n
                    offenders += missing
    for line in offenders:
        print(line)
    if offenders:
        print(f"public-docs: {len(offenders)} of {total} public symbols lack a /// comment", file=sys.stderr)
        return 1
    print(f"public-docs: {total} public symbols, all documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
