"""The fuzzing of tests/test_fuzz.py, longer: every public form and every staff page's
query parameters and addresses, with ``--scale`` times CI's examples, drawn at random
(CI draws the same bounded set on every run). Any 500, or a refused form that wrote a
row, fails it with the example that did.

    .venv/bin/python bench/fuzz.py --scale 20 \\
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/ledgerdesk_fuzz]

Without --database-url it runs on SQLite. The database's public schema is dropped and
rebuilt (the suite's fixture does it): give it one of its own.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=20, help="times CI's examples per surface")
    parser.add_argument("--database-url", help="PostgreSQL to run on (its public schema is rebuilt)")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["FUZZ_SCALE"] = str(args.scale)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    print(f"fuzz: scale {args.scale}, {time.monotonic() - started:.0f} s, exit {result.returncode}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
