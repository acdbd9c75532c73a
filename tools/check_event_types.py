#!/usr/bin/env python3
"""Every event type the control plane publishes is one watchers may filter by.

Reads the type argument of each MakeEvent(...) call in controlplane/ (its string literals,
a ternary's included) and checks each is in kEventTypes (controlplane/events/event_bus.h):
a type missing there is refused as a filter ("is not an event type"), so no watcher or
notify sink could ask for it by name. Exit 1, naming each, when one is missing.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
header = (root / "controlplane/events/event_bus.h").read_text()
known_block = re.search(r"kEventTypes\[\]\s*=\s*\{(.*?)\};", header, re.S)
if not known_block:
    sys.exit("check_event_types: kEventTypes not found in event_bus.h")
known = set(re.findall(r'"([^"]+)"', known_block.group(1)))

def first_argument(text, start):
    """The text of the call's first argument, from just after its '('."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return text[start:i]
            depth -= 1
        elif c == "," and depth == 0:
            return text[start:i]
        i += 1
    return text[start:]

missing = []
for path in sorted((root / "controlplane").rglob("*.cc")):
    if path.name.endswith("_test.cc"):
        continue
    text = path.read_text()
    for match in re.finditer(r"\bMakeEvent\(", text):
        argument = first_argument(text, match.end())
        if argument.strip().startswith("const std::string&"):
            continue  # the definition
        # The type's literals (a ternary's comparisons, "pause", are not types).
        literals = [l for l in re.findall(r'"([^"\\]*)"', argument)
                    if re.fullmatch(r"[a-z]+\.[a-z_]+", l)]
        if not literals and not argument.strip().startswith(("type", "event")):
            line = text.count("\n", 0, match.start()) + 1
            missing.append(f"{path.relative_to(root)}:{line}: a type that is no literal: {argument.strip()[:60]}")
        for literal in literals:
            if literal not in known:
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{path.relative_to(root)}:{line}: \"{literal}\" is not in kEventTypes")
for m in missing:
    print(m)
if missing:
    print("check_event_types: add each to kEventTypes (controlplane/events/event_bus.h) and to "
          "admin.proto's Event.type")
    sys.exit(1)
print(f"event types: {len(known)} known, every published one among them")
