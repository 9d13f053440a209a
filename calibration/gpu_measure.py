"""Timed measurements of one built model on one device: the kernels `calibration.gpu_bench` plans.

`build_model` makes a random-init model of a catalog/config shape (or loads a local checkpoint);
`bench_gemm` / `bench_copy` probe peak FLOP/s and copy bandwidth; `bench_decode` times decode
iterations on a filled `StaticCache` (CUDA-graph and eager), `bench_prefill` a prefill,
`bench_sync` a bucketed weight copy, `bench_train` forward+backward, the AdamW step and the
log-prob forward. Each returns `GpuRow`s (median of repeats, stopping at the deadline) keyed by
`calibration.harness.BenchKey`. torch/transformers are imported inside the functions.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from calibration.harness import BenchKey, _quantile
from rlvr_sim.errors import UserError
from rlvr_sim.model_spec import ModelSpec, catalog_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class GpuRow:
    """One measured row: what (BenchKey), how (engine, dtype), median seconds and spread."""

    key: BenchKey
    seconds: float
    seconds_p25: float
    seconds_p75: float
    repeats: int
    engine: str            # graph | eager | probe
    dtype: str
    device: str
    value: float = math.nan  # probes: FLOP/s or bytes/s
    note: str = ""

    def flat(self) -> dict:
        d = asdict(self.key)
        d.update({k: v for k, v in asdict(self).items() if k != "key"})
        d["seconds_cpu"] = self.seconds   # column the CPU path's readers expect
        return d


# --------------------------------------------------------------------------------------------
# models

@dataclass
class BuiltModel:
    name: str
    spec_json: str        # HF-style config of what was built (BenchKey.model_json)
    params: int
    model: "PreTrainedModel"
    layers: int


def resolve_model_config(source: str) -> tuple[str, dict, Path | None]:
    """(name, HF-style config, checkpoint dir or None) of a catalog name, a config.json path or
    a local checkpoint directory (config.json + weights)."""
    p = Path(source)
    if p.is_dir():
        if not (p / "config.json").exists():
            raise UserError(f"--model {source!r}: directory has no config.json; give a catalog "
                            "name, a config.json or a local checkpoint directory")
        cfg = json.loads((p / "config.json").read_text())
        has_weights = any(p.glob("*.safetensors")) or any(p.glob("*.bin"))
        spec = ModelSpec.from_hf_config_dict(cfg, name=p.name)
        return p.name, spec.to_hf_config_dict(), p if has_weights else None
    if p.suffix == ".json":
        spec = ModelSpec.from_hf_config(p)
        return spec.name, spec.to_hf_config_dict(), None
    spec = catalog_model(source)
    return spec.name, spec.to_hf_config_dict(), None


_SPARSE_KEYS = ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "n_shared_experts",
                "shared_expert_intermediate_size", "first_k_dense_replace", "moe_layer_freq",
                "mlp_only_layers", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim",
                "qk_nope_head_dim", "v_head_dim", "qk_norm")


def build_model(source: str, device: str, dtype: str, seed: int = 0) -> BuiltModel:
    """Random-init model of a catalog/config shape with its REAL vocabulary (the lm_head is part
    of what decode reads), built directly on `device`; or a checkpoint loaded from disk."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from executor.policy import DTYPES

    name, cfg, ckpt = resolve_model_config(source)
    tdtype = DTYPES[dtype]
    torch.manual_seed(seed)
    if ckpt is not None:
        model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=tdtype)
        torch.nn.Module.to(model, device)   # (transformers' stubs type PreTrainedModel.to oddly)
    else:
        hf = {k: v for k, v in cfg.items() if v is not None and k != "name"}
        if not hf.get("num_experts") and not hf.get("kv_lora_rank"):
            hf = {k: v for k, v in hf.items() if k not in _SPARSE_KEYS}
        model_type = hf.pop("model_type")
        hf_config = AutoConfig.for_model(model_type, **hf)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(hf_config, dtype=tdtype)
        model.to(device)
    model.eval()
    spec = ModelSpec.from_hf_config_dict(cfg, name=name)
    return BuiltModel(name=name, spec_json=json.dumps(cfg, sort_keys=True),
                      params=int(sum(p.numel() for p in model.parameters())), model=model,
                      layers=spec.num_hidden_layers)


# --------------------------------------------------------------------------------------------
# timing

class Timer:
    """Times a callable on `device`: CUDA events around `inner` calls on GPU, perf_counter
    after a synchronize otherwise. Returns seconds per call."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            import torch
            torch.cuda.synchronize()

    def once(self, fn: Callable[[], object], inner: int = 1) -> float:
        if self.cuda:
            import torch
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(inner):
                fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1000.0 / inner
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) / inner

    def samples(self, fn: Callable[[], object], repeats: int, deadline: float,
                clock: Callable[[], float] = time.monotonic, warmup: int = 2,
                inner: int = 1) -> list[float]:
        """Warm-up calls, then up to `repeats` timed samples (at least one) before `deadline`."""
        for _ in range(warmup):
            fn()
        self.sync()
        out = [self.once(fn, inner)]
        while len(out) < repeats and clock() < deadline:
            out.append(self.once(fn, inner))
        return out




def _row(key: BenchKey, samples: list[float], engine: str, dtype: str, device: str,
         value: float = math.nan, note: str = "") -> GpuRow:
    return GpuRow(key=key, seconds=statistics.median(samples), seconds_p25=_quantile(samples, .25),
                  seconds_p75=_quantile(samples, .75), repeats=len(samples), engine=engine,
                  dtype=dtype, device=device, value=value, note=note)


def free_cuda() -> None:
    import gc

    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# benchmarks (each returns rows; all take a deadline)

def bench_gemm(n: int, dtype: str, device: str, repeats: int, deadline: float) -> list[GpuRow]:
    import torch

    from executor.policy import DTYPES
    a = torch.randn(n, n, device=device, dtype=DTYPES[dtype])
    b = torch.randn(n, n, device=device, dtype=DTYPES[dtype])
    c = torch.empty(n, n, device=device, dtype=DTYPES[dtype])
    s = Timer(device).samples(lambda: torch.matmul(a, b, out=c), repeats, deadline, inner=5)
    med = statistics.median(s)
    return [_row(BenchKey(kind="peak_gemm", sequences=n), s, "probe", dtype, device,
                 value=2.0 * n ** 3 / med, note=f"{n}^3 matmul, FLOP/s")]


def bench_copy(nbytes: int, device: str, repeats: int, deadline: float) -> list[GpuRow]:
    import torch
    src = torch.randn(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    s = Timer(device).samples(lambda: dst.copy_(src), repeats, deadline, inner=5)
    med = statistics.median(s)
    return [_row(BenchKey(kind="peak_copy", payload_bytes=nbytes), s, "probe", "fp32", device,
                 value=2.0 * nbytes / med, note="device copy, bytes read + written per s")]


def bench_decode(bm: BuiltModel, batch: int, context: int, dtype: str, device: str,
                 repeats: int, deadline: float, try_graph: bool) -> list[GpuRow]:
    """One decode iteration of `batch` sequences at `context` KV tokens each (static cache of
    exactly `context` slots filled with random K/V; the new token writes the last slot).
    Graph rows first (when CUDA and capture works), then eager rows on the same cache."""
    import torch
    from transformers import StaticCache

    model = bm.model
    cache: StaticCache | None = StaticCache(config=model.config, max_cache_len=context)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(0, vocab, (batch, 1), device=device)
    pos = torch.tensor([context - 1], device=device, dtype=torch.long)

    def step():
        return model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True)

    key = BenchKey(kind="decode", model=bm.name, model_json=bm.spec_json, params=bm.params,
                   sequences=batch, context_tokens_sum=batch * context,
                   context_tokens_max=context, iterations=1)
    rows: list[GpuRow] = []
    timer = Timer(device)
    with torch.inference_mode():
        step()                                   # lazy cache allocation
        for layer in getattr(cache, "layers", []):
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if isinstance(t, torch.Tensor):
                    t.normal_()
        graph_err = ""
        if try_graph:
            try:
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        step()
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    step()
                s = timer.samples(graph.replay, repeats, deadline, warmup=3, inner=10)
                rows.append(_row(key, s, "graph", dtype, device))
                del graph
            except Exception as exc:  # noqa: BLE001 - capture is best effort; eager still runs
                graph_err = f"graph capture failed: {type(exc).__name__}: {exc}"[:300]
                try:
                    torch.cuda.synchronize()
                except Exception:  # noqa: BLE001 - the eager timing below reports a broken device
                    pass
        s = timer.samples(step, repeats, deadline, warmup=2, inner=3)
        rows.append(_row(key, s, "eager", dtype, device, note=graph_err))
    cache = None  # frees the KV memory (step() closes over this cell)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()     # the next point's cache has another size
    return rows


def bench_prefill(bm: BuiltModel, sequences: int, tokens_each: int, dtype: str, device: str,
                  repeats: int, deadline: float) -> list[GpuRow]:
    import torch
    model = bm.model
    ids = torch.randint(0, int(model.config.vocab_size), (sequences, tokens_each), device=device)
    with torch.inference_mode():
        s = Timer(device).samples(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1),
                                  repeats, deadline, warmup=1)
    key = BenchKey(kind="prefill", model=bm.name, model_json=bm.spec_json, params=bm.params,
                   sequences=sequences, prompt_tokens=sequences * tokens_each)
    return [_row(key, s, "eager", dtype, device)]


def bench_sync(bm: BuiltModel, bucket_bytes: int, device: str, repeats: int,
               deadline: float) -> list[GpuRow]:
    """Pack every parameter into a send bucket; each full bucket is copied into a receiver
    buffer (the colocated trainer -> sampler hand-over, IPC-like). Times the whole walk."""
    import torch
    params = [p.detach() for p in bm.model.parameters()]
    dtype = params[0].dtype
    elem = params[0].element_size()
    total = sum(p.numel() for p in params)
    cap = max(bucket_bytes // elem, 1)
    bucket = torch.empty(cap, device=device, dtype=dtype)
    recv = torch.empty(total, device=device, dtype=dtype)
    n_buckets = [0]

    def run():
        fill, out = 0, 0
        n_buckets[0] = 0
        for p in params:
            flat = p.reshape(-1)
            i = 0
            while i < flat.numel():
                take = min(cap - fill, flat.numel() - i)
                bucket[fill:fill + take].copy_(flat[i:i + take])
                fill += take
                i += take
                if fill == cap:
                    recv[out:out + fill].copy_(bucket[:fill])
                    out += fill
                    fill = 0
                    n_buckets[0] += 1
        if fill:
            recv[out:out + fill].copy_(bucket[:fill])
            n_buckets[0] += 1

    s = Timer(device).samples(run, repeats, deadline, warmup=1)
    key = BenchKey(kind="weight_sync", model=bm.name, model_json=bm.spec_json, params=bm.params,
                   payload_bytes=int(cap * elem))
    return [_row(key, s, "eager", str(dtype).replace("torch.", ""), device,
                 value=float(n_buckets[0]), note="value = buckets")]


class Trainer:
    """fp32 master weights, bf16 autocast on CUDA (fp32 on CPU), fused AdamW where available."""

    def __init__(self, bm: BuiltModel, device: str):
        import torch
        self.bm, self.device = bm, device
        bm.model.train()
        self.opt = torch.optim.AdamW(bm.model.parameters(), lr=1e-7,
                                     fused=True if device.startswith("cuda") else None)
        self.cuda = device.startswith("cuda")

    def autocast(self):
        import contextlib

        import torch
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def bench_train(tr: Trainer, tokens: int, seq_len: int, device: str, repeats: int,
                deadline: float) -> list[GpuRow]:
    """Forward+backward (HF causal-LM loss over the full vocabulary), the optimizer step and
    the no-grad log-prob forward, on `tokens` tokens as sequences of `seq_len`."""
    import torch
    seq = min(seq_len, tokens)
    n_seq = max(tokens // seq, 1)
    model = tr.bm.model
    ids = torch.randint(0, int(model.config.vocab_size), (n_seq, seq), device=device)
    timer = Timer(device)
    dtype = "bf16-autocast" if tr.cuda else "fp32"

    def fb():
        with tr.autocast():
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()

    def opt():
        tr.opt.step()
        tr.opt.zero_grad(set_to_none=False)

    def logprob():
        with torch.inference_mode(), tr.autocast():
            logits = model(input_ids=ids).logits
            torch.log_softmax(logits.float(), dim=-1)

    s_fb = timer.samples(fb, repeats, deadline, warmup=1)
    s_opt = timer.samples(opt, repeats, deadline, warmup=1)
    s_lp = timer.samples(logprob, repeats, deadline, warmup=1)

    def key(kind: str) -> BenchKey:
        return BenchKey(kind=kind, model=tr.bm.name, model_json=tr.bm.spec_json,
                        params=tr.bm.params, sequences=n_seq, prompt_tokens=n_seq * seq,
                        mini_batches=1)
    return [_row(key("train_fb"), s_fb, "eager", dtype, device),
            _row(key("optimizer"), s_opt, "eager", "fp32", device),
            _row(key("logprob"), s_lp, "eager", dtype, device)]

