"""The rows folded from the same events are the same bytes in every process (no database needed).

Python salts string hashing per process, so anything folded from a set comes out in an order that
changes from one process to the next unless the fold orders it: the live projector and a rebuild (or
two replicas) would then write different jsonb arrays for the same log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.projector.fold_rows import rows_json

ROOT = Path(__file__).resolve().parents[2]


def rows_in_a_process(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-m", "tests.projector.fold_rows"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_same_events_give_byte_identical_rows_whatever_the_hash_seed() -> None:
    here = rows_json()
    assert '"call-0"' in here, "the state column carries the ids folded from sets"
    for seed in ("1", "2", "3"):
        assert rows_in_a_process(seed) == here, f"PYTHONHASHSEED={seed}"
