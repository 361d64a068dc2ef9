"""Run the benchmarks: ``python -m benchmarks [NAME ...]`` (NAME = the part after ``bench_``; default: all)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    """Names of the ``bench_*.py`` modules in this package, sorted."""
    here = Path(__file__).resolve().parent
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = available()
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print("available:", ", ".join(names))
        return 0
    unknown = [a for a in argv if a not in names]
    if unknown:
        print(f"benchmarks: unknown benchmark {unknown[0]!r} (available: {', '.join(names)})", file=sys.stderr)
        return 2
    for name in argv or names:
        print(f"== benchmark {name}", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
