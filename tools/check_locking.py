#!/usr/bin/env python3
"""Checks that the `Locked` suffix and the thread-safety annotations agree.

Every function declared with a name ending in `Locked` says which lock its caller holds
(ABSL_EXCLUSIVE_LOCKS_REQUIRED / ABSL_SHARED_LOCKS_REQUIRED), so that -Wthread-safety
(bazel build --config=clang, run by tools/test) checks every call; and every function that
requires a lock of its own object is named ...Locked, so a reader sees it at the call.
Requirements on a lock passed in (a parameter) or on `this` (the Mutex's own Await) are
exempt. Out-of-class definitions (Class::Name) repeat a declaration and are skipped.

Prints FILE:LINE: message for each disagreement; exits 1 if there is any.
"""
import re
import subprocess
import sys

REQUIRES = re.compile(r"ABSL_(?:EXCLUSIVE|SHARED)_LOCKS_REQUIRED\(([^)]*)\)")
NOT_TYPES = {"return", "else", "new", "delete", "case", "throw", "co_return", "goto"}


def strip(text):
    """Blanks comments and string literals, keeping line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(c if c == "\n" else " " for c in text[i:j]))
            i = j
        elif text[i] == '"' or (text[i] == "'" and not text[i - 1:i].isalnum()):
            q = text[i]
            j = i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append(q + " " * (min(j, n) - i - 1) + (q if j < n else ""))
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def statements(text):
    """Yields (start offset, text) of each statement ended at depth 0 by ';' or '{'."""
    depth = 0
    start = 0
    for i, c in enumerate(text):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif depth == 0 and c in ";{}":
            yield start, text[start:i]
            start = i + 1


def main():
    files = subprocess.run(["git", "ls-files", "*.h", "*.cc"], capture_output=True, text=True,
                           check=True).stdout.split()
    problems = []
    for path in files:
        raw = open(path, encoding="utf-8").read()
        text = strip(raw)
        for start, stmt in statements(text):
            body = stmt.lstrip()
            offset = start + len(stmt) - len(body)
            if body.startswith("#"):
                continue
            m = re.search(r"([A-Za-z_][\w:]*)\s*\(", body)
            if not m:
                continue
            qualified = m.group(1)
            name = qualified.split("::")[-1]
            prefix = body[:m.start()]
            words = prefix.split()
            if (not name[:1].isupper() or name.startswith("ABSL_") or "::" in qualified or
                    not words or words[0] in NOT_TYPES or
                    any(t in prefix for t in ("=", ".", "(", "->"))):
                continue
            params = body[m.end():]
            line = raw.count("\n", 0, offset) + 1
            required = [a.strip() for r in REQUIRES.findall(body) for a in r.split(",")]
            # Locks of its own object, not a parameter's or its own (`this`).
            own = [a for a in required
                   if a and a != "this" and not re.search(r"\b%s\b" % re.escape(a.lstrip("*&")),
                                                         params.split(")")[0])]
            if name.endswith("Locked") and not required:
                problems.append(f"{path}:{line}: {name} is named ...Locked but does not say "
                                "which lock its caller holds (ABSL_EXCLUSIVE_LOCKS_REQUIRED)")
            elif own and not name.endswith("Locked"):
                problems.append(f"{path}:{line}: {name} requires {', '.join(own)} but is not "
                                "named ...Locked")
    for p in problems:
        print(p)
    if problems:
        print(f"check_locking: {len(problems)} disagreements between names and annotations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
