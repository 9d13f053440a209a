"""The TensorRT-LLM anchor benchmark's analytic max-load model (behaviour, not the numbers)."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("anchor_trtllm", ROOT / "benchmarks" / "anchor_trtllm.py")
anchor = importlib.util.module_from_spec(spec)
sys.modules["anchor_trtllm"] = anchor  # dataclasses look their module up
spec.loader.exec_module(anchor)


@pytest.fixture()
def published(tmp_path):
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump({"decoding": [{"id": anchor.ANCHOR_ID, "points": {
        "128/128": 1000.0, "20000/2000": 1000.0}}]}))
    return path


def test_anchor_rows_follow_the_memory_plan(published):
    rows = anchor.run(published)
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(128, 128), (20000, 2000)]
    short, long_ = rows
    assert short.concurrency == anchor.MAX_BATCH           # KV is not the limit at 256 tokens
    cm = anchor.CostModel.from_scenario(anchor.load_scenario(anchor.SCENARIO, check_fit=False))
    assert long_.concurrency == cm.sampler_plan.kv_blocks // math.ceil(22000 / 32)
    for r in rows:
        expect = r.concurrency * r.output_tokens / (
            r.output_tokens * r.decode_step_s + r.concurrency * r.prefill_s_per_request)
        assert r.predicted_tokens_per_s == pytest.approx(expect)
        assert r.error == pytest.approx(r.predicted_tokens_per_s / 1000.0 - 1)
    assert long_.predicted_tokens_per_s < short.predicted_tokens_per_s
