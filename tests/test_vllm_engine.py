"""One short real run of calibration.vllm_engine (marked `vllm`, skipped where vllm is not
importable): forced lengths, a record per request, steps that add up. Runs in .venv-vllm
(`make test-vllm`); the comparison with the simulator is tests/test_engine_validate.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

pytest.importorskip("vllm")

from calibration.engine_records import EngineRun, EngineWorkload  # noqa: E402

pytestmark = pytest.mark.vllm


def test_real_vllm_run_forces_lengths_and_records_every_request(tmp_path):
    from calibration import vllm_engine

    w = EngineWorkload(name="tiny", prompts=2, k=2, prompt_tokens=20, median_tokens=8, sigma=0.8,
                       cap_tokens=24, block_tokens=32)
    (tmp_path / "w.json").write_text(json.dumps(w.__dict__))
    # the same engine runs two weight updates after step 3: in flight, and interrupting
    updates = [replace(w, name=f"tiny-{m}", weight_update_after_step=3, weight_update_mode=m)
               for m in ("keep_kv", "recompute")]
    for u in updates:
        (tmp_path / f"{u.name}.json").write_text(json.dumps(u.__dict__))
    assert vllm_engine.main([str(tmp_path / "w.json"), *(str(tmp_path / f"{u.name}.json")
                                                         for u in updates),
                             "--model", "tiny-0.5m", "--threads", "1", "--out", str(tmp_path)]) == 0
    run = EngineRun.from_json((tmp_path / "tiny.r0.run.json").read_text())
    assert [r.output_tokens for r in run.requests] == w.response_lengths()
    assert all(r.finish_s is not None and r.first_token_s <= r.finish_s for r in run.requests)
    assert run.preemptions_total == 0 and sum(s.new_tokens for s in run.steps) == \
        sum(w.response_lengths())
    by_length = sorted(run.requests, key=lambda r: r.target_tokens)
    assert by_length[0].finish_s <= by_length[-1].finish_s
    assert run.engine.startswith("vllm") and run.threads == 1 and run.kv_blocks_engine
    for u in updates:
        upd = EngineRun.from_json((tmp_path / f"{u.name}.r0.run.json").read_text())
        (rec,) = upd.weight_updates
        assert rec.after_step == 3 and rec.mode == u.weight_update_mode and rec.running > 0
        assert rec.interrupted == (rec.running if u.weight_update_mode == "recompute" else 0)
        # the forced lengths survive the update; interrupted requests are not preemptions
        assert [r.output_tokens for r in upd.requests] == w.response_lengths()
        assert upd.preemptions_total == 0 and all(r.preemptions == 0 for r in upd.requests)
