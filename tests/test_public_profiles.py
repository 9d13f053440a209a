"""Public-measurement dataset, fit, leave-one-source-out CV and shipped default profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration import public_fit as pf
from calibration.public_data import (KINDS, PUBLIC_DIR, CollectiveRow, DecodeRow, GemmRow,
                                     TrainingRow, load_rows, load_sources, model_spec, read_table)
from calibration.public_report import TRTLLM_V1_PREFIX
from calibration.public_predict import (effective_train_mfu, gemm_s, predict_s,
                                        training_s_per_token)
from rlvr_sim.hardware import HardwareProfile, gpu_names, public_profile_path

ROOT = Path(__file__).resolve().parent.parent


# --- dataset ---------------------------------------------------------------------------------

def test_every_row_names_a_documented_source():
    sources = load_sources()
    for sid, s in sources.items():
        for field in ("url", "document", "version", "date", "setup"):
            assert getattr(s, field).strip(), f"source {sid} has an empty {field}"
        assert s.url.startswith("https://"), sid
    total = 0
    for kind in KINDS:
        for rec in read_table(kind):
            total += 1
            assert rec["source"] in sources, f"{kind} row names unknown source {rec['source']!r}"
            assert str(rec["setup"]).strip(), f"{kind} row without setup: {rec}"
            assert rec["value"] is not None and rec["value"] > 0, rec
            assert rec["gpu"] in gpu_names(), rec["gpu"]
    assert total > 500


def test_no_whole_rl_run_is_a_source():
    text = (PUBLIC_DIR / "sources.yaml").read_text().lower()
    for framework in ("nemo-rl", "verl", "areal", "openrlhf"):
        assert f"url: https://github.com/{framework}" not in text
    assert "published.yaml" not in {r["source"] for k in KINDS for r in read_table(k)}


def test_vidur_notice_is_kept():
    text = (PUBLIC_DIR / "LICENSE-vidur.txt").read_text()
    assert "MIT License" in text and "Microsoft Corporation" in text


def test_every_training_and_decode_model_has_a_shape():
    for r in load_rows("training") + load_rows("decode"):
        assert model_spec(r.model).num_hidden_layers > 0


def test_mpt_shapes_match_published_param_counts():
    # llm-foundry NumParams of MPT-7B at seq 2048 is 6,658,859,008 including 2048 x 4096 learned
    # position embeddings, which models.yaml leaves out (no matmul FLOPs)
    from rlvr_sim.cost.params import param_counts
    total = param_counts(model_spec("mpt-7b")).total
    assert abs(total - (6_658_859_008 - 2048 * 4096)) / total < 1e-3


def test_published_trtllm_rows_are_in_the_table():
    rows = {(r.input_tokens, r.output_tokens): r.value for r in load_rows("decode")
            if r.gpu == "h100-sxm" and r.model == "llama-3.1-8b"
            and r.setup.startswith(TRTLLM_V1_PREFIX)}
    # /work/shared/reference/published.yaml decoding: trtllm-llama3.1-8b-fp8-h100
    assert rows[(128, 128)] == 28312 and rows[(128, 2048)] == 22714
    assert rows[(1000, 1000)] == 15220 and rows[(1000, 2000)] == 13899
    assert rows[(2048, 2048)] == 9305 and rows[(20000, 2000)] == 1351


# --- prediction functions (hand-computed) ----------------------------------------------------

def test_gemm_roofline_by_hand():
    hw = HardwareProfile.from_catalog("h100-sxm")  # 989.4e12 FLOP/s, 3.35e12 B/s
    eff = hw.efficiency.model_copy(update={"decode_bw_eff": 0.5, "decode_mfu": 0.5,
                                           "prefill_mfu": 0.25})
    hw = hw.model_copy(update={"efficiency": eff})
    small = GemmRow("s", "h100-sxm", "m", 1, 16, flop=1e12, weight_bytes=3.35e9, value=1.0, setup="x")
    # memory 3.35e9 / (3.35e12 x 0.5) = 2 ms; compute 1e12 / (989.4e12 x 0.5) = 2.0214 ms
    assert gemm_s(small, hw) == pytest.approx(1e12 / (989.4e12 * 0.5))
    big = GemmRow("s", "h100-sxm", "m", 1, 4096, flop=1e12, weight_bytes=3.35e9, value=1.0, setup="x")
    assert gemm_s(big, hw) == pytest.approx(1e12 / (989.4e12 * 0.25))  # prefill_mfu from 512


def test_effective_mfu_curve_and_grouped_gemm():
    hw = HardwareProfile.from_catalog("h100-sxm")
    eff = hw.efficiency.model_copy(update={"train_mfu": 0.5, "train_mfu_half_tokens": 1000.0})
    hw = hw.model_copy(update={"efficiency": eff})
    dense = model_spec("llama-3.1-8b")
    assert effective_train_mfu(dense, hw, 1000.0) == pytest.approx(0.25)
    assert effective_train_mfu(dense, hw, 3000.0) == pytest.approx(0.375)
    moe = model_spec("qwen3-30b-a3b")
    eff2 = eff.model_copy(update={"train_mfu_half_tokens": None, "grouped_gemm_eff": 0.5})
    hw2 = hw.model_copy(update={"efficiency": eff2})
    from rlvr_sim.cost.params import param_counts
    c = param_counts(moe)
    share = c.expert_active / c.active
    assert effective_train_mfu(moe, hw2, 4096) == pytest.approx(0.5 / ((1 - share) + 2 * share))
    assert effective_train_mfu(dense, hw2, 4096) == pytest.approx(0.5)  # dense: no expert GEMMs


def test_training_prediction_is_the_trainer_cost_model():
    from rlvr_sim.cost.trainer import TrainerShape, train_step
    hw = HardwareProfile.from_catalog("a100-80gb")
    row = TrainingRow("s", "a100-80gb", "mpt-1b", "bf16", 8, 1, 1, 1, True, 4, 2048, 64, "none",
                      1000.0, None, "x")
    shape = TrainerShape(gpus=8, fsdp=True, mini_batches=1, reference_model=False,
                         old_logprob=False, recompute_activations=False)
    step = train_step(model_spec("mpt-1b"), hw, shape, 64, 64 * 2048, 0)
    assert training_s_per_token(row, hw) == pytest.approx(step.total_s * 8 / (64 * 2048))


# --- fit recovers known terms from synthetic rows made by the cost model -----------------------

def _synthetic(rows, truth: HardwareProfile):
    out = []
    for r in rows:
        s = predict_s(r, truth)
        value = 1.0 / s if isinstance(r, (TrainingRow, DecodeRow)) else s
        out.append(type(r)(**{**r.__dict__, "value": value}))
    return out


def _truth(**terms) -> HardwareProfile:
    hw = HardwareProfile.from_catalog("h100-sxm")
    return hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update=terms)})


def test_fit_recovers_inference_terms_from_synthetic_rows():
    truth = _truth(decode_bw_eff=0.62, decode_mfu=0.33, prefill_mfu=0.71, decode_overhead_s=0.006)
    real = [r for r in load_rows("decode") if r.gpu == "h100-sxm"][:12]
    real += [r for r in load_rows("gemm") if r.gpu == "h100-sxm" and r.tp == 1][::6]
    rows = _synthetic(real, truth)
    terms = ["decode_bw_eff", "decode_mfu", "prefill_mfu", "decode_overhead_s"]
    res, _ = pf.fit_terms(rows, HardwareProfile.from_catalog("h100-sxm"), terms)
    for t in terms:
        assert res.values[t] == pytest.approx(getattr(truth.efficiency, t), rel=0.02), t


def test_fit_recovers_training_curve_from_synthetic_rows():
    truth = _truth(train_mfu=0.52, train_mfu_half_tokens=3000.0)
    rows = _synthetic([r for r in load_rows("training") if r.gpu == "h100-sxm"], truth)
    res, _ = pf.fit_terms(rows, HardwareProfile.from_catalog("h100-sxm"),
                          ["train_mfu", "train_mfu_half_tokens"])
    assert res.values["train_mfu"] == pytest.approx(0.52, rel=0.02)
    assert res.values["train_mfu_half_tokens"] == pytest.approx(3000.0, rel=0.05)


def test_fit_recovers_collective_terms_from_synthetic_rows():
    truth = _truth(link_eff=0.66, collective_latency_s=4e-5)
    rows = _synthetic([r for r in load_rows("collectives") if r.gpu == "h100-sxm"
                       and pf.collective_in_fit(r)], truth)
    res, _ = pf.fit_terms(rows, HardwareProfile.from_catalog("h100-sxm"),
                          ["link_eff", "collective_latency_s"])
    assert res.values["link_eff"] == pytest.approx(0.66, rel=0.02)
    assert res.values["collective_latency_s"] == pytest.approx(4e-5, rel=0.05)


# --- leave-one-source-out holds out by source (hand-checkable) --------------------------------

def _coll(source: str, n: int, t: float) -> CollectiveRow:
    return CollectiveRow(source, "h100-sxm", "x", "all_reduce", 2, 8, n, t, "x")


def test_hold_out_fits_only_on_the_other_sources():
    # two ranks: time = 2 (1/2) bytes / (450e9 x link_eff) + latency. Source A is exactly
    # link_eff 0.5, latency 1e-5; source B is four times slower in bandwidth (link_eff 0.125).
    def t(n, eff):
        return n / (450e9 * eff) + 1e-5
    rows = [_coll("A", n, t(n, 0.5)) for n in (1e6, 1e7, 1e8)]
    rows += [_coll("B", n, t(n, 0.125)) for n in (1e6, 1e7, 1e8)]
    group = pf.Group("collectives", ("collectives",), ("link_eff", "collective_latency_s"))
    base = HardwareProfile.from_catalog("h100-sxm")
    fold = pf.hold_out(group, rows, base, "B")
    assert fold["fitted_on"] == ["A"] and fold["rows"] == 3
    assert fold["values"]["link_eff"] == pytest.approx(0.5, rel=1e-3)
    # predicting B with A's fit: the 1e8-byte row is ~4x too fast -> |err| near 300%
    assert fold["max_abs_err_pct"] == pytest.approx(
        (t(1e8, 0.125) / t(1e8, 0.5) - 1) * 100, rel=1e-2)
    fold_a = pf.hold_out(group, rows, base, "A")
    assert fold_a["fitted_on"] == ["B"]
    assert fold_a["values"]["link_eff"] == pytest.approx(0.125, rel=1e-3)


def test_group_of_one_source_has_no_cv_error():
    rows = [_coll("A", n, n / (450e9 * 0.5) + 1e-5) for n in (1e6, 1e7, 1e8)]
    gf, _ = pf.fit_group(pf.GROUPS[0], rows, HardwareProfile.from_catalog("h100-sxm"))
    assert gf.folds == []
    assert gf.cv()["link_eff"]["loso_median_abs_err_pct"] is None


# --- shipped profiles and the default lookup -------------------------------------------------

# h200 and l40s have TensorRT-LLM rows only, and their fit saturates decode_bw_eff at 100% of the
# datasheet (compensation, not measurement): they ship no public profile
SHIPPED = ("a100-40gb", "a100-80gb", "h100-sxm")


@pytest.mark.parametrize("gpu", SHIPPED)
def test_shipped_profile_is_the_default(gpu):
    assert public_profile_path(gpu) is not None
    prof = HardwareProfile.default_for(gpu)
    assert prof.source.startswith("public-fit")
    assert prof.efficiency_origin.startswith("public-measurement fit")
    assert prof.datasheet == HardwareProfile.from_catalog(gpu).datasheet
    # the package copy is the file in profiles/ (what `calibration.public_fit` wrote)
    assert (ROOT / "profiles" / f"{gpu}.public.yaml").read_text() == \
        Path(public_profile_path(gpu)).read_text()
    # every shipped term was fitted: differs from or equals the generic value by the fit only
    assert HardwareProfile.load(public_profile_path(gpu)).calibration.rows > 0


@pytest.mark.parametrize("gpu", sorted(set(gpu_names()) - set(SHIPPED)))
def test_other_gpus_keep_datasheet_guesses(gpu):
    assert public_profile_path(gpu) is None
    prof = HardwareProfile.default_for(gpu)
    assert prof.source == "datasheet"
    assert prof.efficiency_origin == "datasheet guesses (not measured)"


def test_scenario_uses_the_default_profile():
    from rlvr_sim.scenario import load_scenario
    sc = load_scenario(ROOT / "scenarios" / "nemo-rl-llama3.1-8b-onpolicy.yaml")
    assert sc.hardware.gpu == "h100-sxm"
    assert sc.hardware_profile.source.startswith("public-fit")


def test_describe_says_where_efficiencies_come_from():
    from rlvr_sim.commands.describe import build_report, format_report
    from rlvr_sim.scenario import load_scenario
    sc = load_scenario(ROOT / "scenarios" / "nemo-rl-llama3.1-8b-onpolicy.yaml")
    text = format_report(build_report(sc))
    assert "public-measurement fit" in text


def test_shipped_h100_profile_is_what_the_fit_gives():
    fit = pf.fit_gpu("h100-sxm")
    shipped = HardwareProfile.load(public_profile_path("h100-sxm")).efficiency
    for t in fit.fitted_terms:
        assert getattr(shipped, t) == pytest.approx(getattr(fit.profile.efficiency, t), rel=1e-6), t
    assert shipped.train_mfu_half_tokens is None or "train_mfu_half_tokens" in fit.fitted_terms


def test_fit_recovers_grouped_gemm_eff_from_dense_and_moe_rows():
    truth = _truth(train_mfu=0.45, grouped_gemm_eff=0.4)
    real = [r for r in load_rows("training") if r.gpu == "h100-sxm"]
    assert any(model_spec(r.model).num_experts for r in real)
    rows = _synthetic(real, truth)
    res, _ = pf.fit_terms(rows, HardwareProfile.from_catalog("h100-sxm"),
                          ["train_mfu", "grouped_gemm_eff"])
    assert res.values["train_mfu"] == pytest.approx(0.45, rel=0.02)
    assert res.values["grouped_gemm_eff"] == pytest.approx(0.4, rel=0.03)


def test_moe_rows_alone_fit_no_training_term():
    moe = [r for r in load_rows("training") if r.gpu == "b200"]
    assert moe and all(model_spec(r.model).num_experts for r in moe)
    assert pf.informed_terms(pf.GROUPS[2], moe) == []
    assert pf.fit_gpu("b200") is None  # b200 keeps datasheet guesses


# --- extractors on hand-written tables ----------------------------------------------------------

def test_llm_foundry_table_parser():
    from calibration.public_extract import llm_foundry_rows
    md = """## H100 80GB BF16
|  Model | SeqLen (T) | # GPUs | GPU | MFU | HFU | Model TFLOP | MicroBatchSize | GradAccum | GlobalBatchSize | Throughput (S/s) | Throughput (T/s) | Throughput (T/s/GPU) | GlobalBatchSize (T) | Precision | MP Mode | Sharding Strategy | Activation Checkpointing | Activation CPUOffload | NumParams |
|  --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
|  7b | 2048 | 8 | h100_80gb | 46.44 | 46.44 |  4.595096E+14 | 6 | 1 | 48 | 41 | 85144 | 10643 | 98304 | amp_bf16 | DEFAULT | FULL_SHARD | False | False | 6658859008 |

## H100 80GB FP8
|  Model | SeqLen (T) | # GPUs | GPU | MFU | HFU | Model TFLOP | MicroBatchSize | GradAccum | GlobalBatchSize | Throughput (S/s) | Throughput (T/s) | Throughput (T/s/GPU) | GlobalBatchSize (T) | Precision | MP Mode | Sharding Strategy | Activation Checkpointing | Activation CPUOffload | NumParams |
|  --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
|  3b | 2048 | 8 | h100_80gb | 27.7 | 27.7 |  5.482421E+14 | 10 | 6 | 480 | 119 | 244692 | 30586 | 983040 | amp_fp8 | DEFAULT | FULL_SHARD | False | False | 2651837440 |
"""
    rows = llm_foundry_rows(md)
    assert len(rows) == 1  # the FP8 section is skipped
    r = rows[0]
    assert (r["gpu"], r["model"], r["gpus"], r["micro_batch"], r["seq_len"], r["global_batch"],
            r["recompute"], r["value"]) == ("h100-sxm", "mpt-7b", 8, 6, 2048, 48, "none", 10643.0)
    assert r["reported_mfu"] == pytest.approx(0.4644)


def test_megatron_bridge_table_parser():
    from calibration.public_extract import megatron_bridge_rows
    md = """## 26.04 NeMo Container

### Pre-Training Performance

#### Model: GPT OSS 120B

| System | #-GPUs | Precision | GBS | MBS | Sequence Length | FSDP | TP | PP | CP | VP | EP | Tokens / sec / GPU | Model TFLOP / sec / GPU |
|--------|--------|-----------|-----|-----|-----------------|------|----|----|----|----|----|-----------------------|-------------------------|
| DGX-GB200 | 64 | BF16 | 1280 | 4 | 4096 | 0 | 1 | 1 | 1 | n/a | 64 | 15938 | 433 |
| DGX-H100 | 64 | BF16 | 1280 | 1 | 4096 | 0 | 1 | 4 | 1 | n/a | 8 | 5810 | 158 |
| DGX-H100 | 64 | FP8-CS | 1280 | 1 | 4096 | 0 | 1 | 4 | 1 | n/a | 8 | 7000 | 190 |
"""
    rows = megatron_bridge_rows(md, "docs/x.md")
    assert len(rows) == 1  # GB200 is no catalog GPU; FP8 rows are skipped
    r = rows[0]
    assert (r["gpu"], r["model"], r["gpus"], r["pp"], r["micro_batch"], r["global_batch"],
            r["fsdp"], r["value"]) == ("h100-sxm", "gpt-oss-120b", 64, 4, 1, 1280, False, 5810.0)
    assert "26.04 NeMo Container" in r["setup"] and "EP 8" in r["setup"]


def test_a_fit_that_saturates_a_fraction_of_peak_ships_nothing():
    """A group whose fit drives a fraction-of-peak term to 1.0 is compensation: none of its
    terms are shipped (hand case: decode_bw_eff at 1.0 and at 0.98)."""
    assert pf.physically_saturated({"decode_bw_eff": 1.0}, ["decode_bw_eff"]) == ["decode_bw_eff"]
    assert pf.physically_saturated({"decode_bw_eff": 0.98}, ["decode_bw_eff"]) == []
    assert pf.physically_saturated({"decode_overhead_s": 0.1}, ["decode_overhead_s"]) == []
    fit = pf.fit_gpu("h200")
    assert fit is not None and fit.fitted_terms == []
