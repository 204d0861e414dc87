"""Sweep of vicourse's public API with bad input: every case of tests/test_contract_*.py.

Prints, per module group and in total: calls tried, clear errors, correct results, unclear
(a raw error from inside torch or Python, or a message that does not name the argument) and
silently wrong (a wrong or non-finite result, a hang, a missing warning). With --list, each
case that is not clear or correct is printed with what happened.

    python bench/api_sweep.py [--list]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from contract import OUTCOMES, outcome  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print every failing case")
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    print(f"{'group':<12} {'tried':>6} " + " ".join(f"{o:>15}" for o in OUTCOMES))
    for path in sorted((ROOT / "tests").glob("test_contract_*.py")):
        module = importlib.import_module(path.stem)
        counts: Counter[str] = Counter()
        for case in module.CASES:
            kind, detail = outcome(case)
            counts[kind] += 1
            if args.list and kind not in ("clear error", "correct result"):
                print(f"  {kind}: {case.name}: {detail[:300]}")
        totals += counts
        group = path.stem.removeprefix("test_contract_")
        print(f"{group:<12} {sum(counts.values()):>6} "
              + " ".join(f"{counts[o]:>15}" for o in OUTCOMES))
    print(f"{'total':<12} {sum(totals.values()):>6} "
          + " ".join(f"{totals[o]:>15}" for o in OUTCOMES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
