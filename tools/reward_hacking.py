"""Run the code verifier's reward-hacking suite and print its table (see executor/reward_hacking.py).

    python tools/reward_hacking.py [--isolation auto|python] [--workers N]

Exit status 0 when every attack is contained (reward 0, the pool still scores the reference 1,
no host file created), 1 otherwise.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executor.reward_hacking import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
