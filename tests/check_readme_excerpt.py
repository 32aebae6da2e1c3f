#!/usr/bin/env python3
"""Checks that the README's API tour is really an excerpt of an example program, so the two cannot drift apart.

    check_readme_excerpt.py README.md examples/feature_extraction.cpp

The tour is the first ```cpp block after the line that names the example file. Every line of the block must
appear in the example, in the same order (lines the README leaves out are marked with a line `// ...`).
Exit 0 when it does; otherwise exit 1 naming the first line that does not match.
"""
import os
import sys


def main(readme_path, example_path):
    readme = open(readme_path, encoding="utf-8").read().splitlines()
    example = open(example_path, encoding="utf-8").read().splitlines()
    name = os.path.join(os.path.basename(os.path.dirname(example_path)), os.path.basename(example_path))
    try:
        named = next(i for i, line in enumerate(readme) if name in line)
        start = next(i for i in range(named, len(readme)) if readme[i].strip() == "```cpp") + 1
        end = next(i for i in range(start, len(readme)) if readme[i].strip() == "```")
    except StopIteration:
        sys.exit(f"check_readme_excerpt: {readme_path} has no ```cpp block after a line naming {name}")
    block = [line for line in readme[start:end] if line.strip() != "// ..."]
    if len(block) < 10:
        sys.exit(f"check_readme_excerpt: the block at {readme_path}:{start} has only {len(block)} lines")
    pos = 0
    for number, line in enumerate(block):
        while pos < len(example) and example[pos] != line:
            pos += 1
        if pos == len(example):
            sys.exit(f"check_readme_excerpt: README line {number + 1} of the tour is not in {name} (in order):\n"
                     f"  {line!r}")
        pos += 1
    print(f"check_readme_excerpt: the README's tour ({len(block)} lines) is an excerpt of {name}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
