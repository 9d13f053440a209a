"""Golden outputs of the simulator: every shipped scenario, a few steps, a fixed seed.

`python tools/golden_sim.py OUT.json` simulates each `scenarios/*.yaml` for `STEPS` steps with
seed `SEED` (default speed approximations, trace on) and writes, per scenario, the summary
(JSON) and the SHA-256 of the trace's CSV text (floats at repr precision). A refactor must
leave the file byte-identical; `--compare OLD.json` prints what differs (step time per scenario
first) and exits 1 when anything does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3
SEED = 7


def _clean(x):
    """JSON-safe: NaN/inf as strings (json would write non-standard tokens)."""
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def golden(scenario_path: Path) -> dict:
    from rlvr_sim.scenario import load_scenario
    from rlvr_sim.sim.run import simulate

    sc = load_scenario(scenario_path)
    out = {}
    for exact in (False, True):
        res = simulate(sc, steps=STEPS, seed=SEED, exact=exact)
        csv = res.trace.to_csv(index=False, float_format="%.17g")
        out["exact" if exact else "fast"] = {
            "summary": _clean(res.summary.model_dump()), "trace_rows": len(res.trace),
            "trace_sha256": hashlib.sha256(csv.encode()).hexdigest()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="where to write the golden JSON")
    p.add_argument("--compare", help="an earlier golden JSON to compare with")
    a = p.parse_args(argv)
    out = {}
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        out[path.stem] = golden(path)
    Path(a.out).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    if not a.compare:
        return 0
    old = json.loads(Path(a.compare).read_text())
    differ = 0
    for name in sorted(set(old) | set(out)):
        o, n = old.get(name), out.get(name)
        if o == n:
            continue
        differ += 1
        if o is None or n is None:
            print(f"{name}: only in {'new' if o is None else 'old'}")
            continue
        for kind in ("fast", "exact"):
            a, b = o[kind], n[kind]
            if a == b:
                continue
            so, sn = a["summary"]["step_time_s"]["mean"], b["summary"]["step_time_s"]["mean"]
            pre = ("preemptions", "prefill_s_per_replica_step")
            print(f"{name} [{kind}]: step_time_s mean {so:.6g} -> {sn:.6g} "
                  f"({100 * (sn - so) / so:+.3f} %); trace "
                  f"{'same' if a['trace_sha256'] == b['trace_sha256'] else 'differs'}; "
                  + ", ".join(f"{c} {a['summary']['counters'].get(c)} -> "
                              f"{b['summary']['counters'].get(c)}" for c in pre))
    print(f"{differ} of {len(out)} scenarios differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
