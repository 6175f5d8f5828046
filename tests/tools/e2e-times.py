#!/usr/bin/env python3
"""e2e-times.py JUNIT.xml... — the end-to-end test files by the time their tests took,
slowest first (pytest's --junitxml records each test's time). tests/run.sh prints the
top of it after the tests so the next change knows where the suite's minutes go."""
import collections
import sys
import xml.etree.ElementTree as ET


def main(argv):
    top = 12
    by_file = collections.Counter()
    count = collections.Counter()
    for path in argv[1:]:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            print(f"  ({path}: {e})")
            continue
        for case in root.iter("testcase"):
            # classname: tests.e2e.test_x (or test_x), module first
            name = case.get("classname", "?").split(".")
            mod = next((n for n in name if n.startswith("test_")), name[-1])
            by_file[mod] += float(case.get("time", 0))
            count[mod] += 1
    total = sum(by_file.values())
    for mod, t in by_file.most_common(top):
        print(f"  {mod + '.py':<32} {t:6.0f} s  {count[mod]:3d} tests  {100 * t / total if total else 0:3.0f}%")
    print(f"  {'(all ' + str(len(by_file)) + ' files, all lanes)':<32} {total:6.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
