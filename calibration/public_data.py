"""The public-measurement dataset (calibration/public/): typed rows, sources, model shapes.

One CSV per kind of measurement (`training`, `decode`, `gemm`, `collectives`), every row naming
its source id; `sources.yaml` gives each source's URL, document, version, date and setup;
`models.yaml` gives the shapes of benchmarked models that are not in the model catalog.
This module only reads, checks and writes the tables; what a row predicts is in
`calibration.public_predict`, the fit in `calibration.public_fit`.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from rlvr_sim.model_spec import ModelSpec, catalog_model, catalog_names

PUBLIC_DIR = Path(__file__).resolve().parent / "public"
KINDS = ("training", "decode", "gemm", "collectives")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "training": ("source", "gpu", "model", "dtype", "gpus", "tp", "pp", "cp", "fsdp",
                 "micro_batch", "seq_len", "global_batch", "recompute", "metric", "value",
                 "reported_mfu", "setup"),
    "decode": ("source", "gpu", "model", "weight_dtype", "kv_dtype", "tp", "pp", "input_tokens",
               "output_tokens", "metric", "value", "setup"),
    "gemm": ("source", "gpu", "model", "tp", "tokens", "flop", "weight_bytes", "metric", "value",
             "setup"),
    "collectives": ("source", "gpu", "system", "op", "ranks", "ranks_per_node", "bytes", "metric",
                    "value", "setup"),
}
_INT = {"gpus", "tp", "pp", "cp", "micro_batch", "seq_len", "global_batch", "input_tokens",
        "output_tokens", "tokens", "ranks", "ranks_per_node", "bytes"}
_FLOAT = {"value", "reported_mfu", "flop", "weight_bytes"}
_BOOL = {"fsdp"}


@dataclass(frozen=True)
class Source:
    """Where a set of rows was published."""

    id: str
    url: str
    document: str
    version: str
    date: str
    setup: str
    license: str = ""


@dataclass(frozen=True)
class TrainingRow:
    """Pre-training throughput of one configuration (tokens/s per GPU, whole step)."""

    source: str
    gpu: str
    model: str
    dtype: str
    gpus: int
    tp: int
    pp: int
    cp: int
    fsdp: bool
    micro_batch: int
    seq_len: int
    global_batch: int
    recompute: str          # none | selective | full
    value: float            # tokens/s per GPU
    reported_mfu: float | None
    setup: str

    @property
    def dp(self) -> int:
        return max(self.gpus // (self.tp * self.pp * self.cp), 1)

    @property
    def tokens_per_gpu_micro_batch(self) -> float:
        """t of the MFU curve: tokens one GPU processes in one micro-batch (TP ranks share the
        same tokens; context parallelism splits the sequence)."""
        return self.micro_batch * self.seq_len / self.cp


@dataclass(frozen=True)
class DecodeRow:
    """Offline max-load generation throughput of fixed input/output lengths."""

    source: str
    gpu: str
    model: str
    weight_dtype: str
    kv_dtype: str
    tp: int
    pp: int
    input_tokens: int
    output_tokens: int
    value: float            # output tokens/s of the whole tp x pp replica
    setup: str


@dataclass(frozen=True)
class GemmRow:
    """Time of one layer's GEMMs on one GPU (operator profile)."""

    source: str
    gpu: str
    model: str
    tp: int
    tokens: int
    flop: float             # per GPU
    weight_bytes: float     # per GPU
    value: float            # seconds
    setup: str


@dataclass(frozen=True)
class CollectiveRow:
    """Time of one collective of `bytes` over `ranks` GPUs."""

    source: str
    gpu: str
    system: str
    op: str
    ranks: int
    ranks_per_node: int
    bytes: int
    value: float            # seconds
    setup: str


ROW_TYPES = {"training": TrainingRow, "decode": DecodeRow, "gemm": GemmRow,
             "collectives": CollectiveRow}


def _convert(key: str, text: str):
    if key in _INT:
        return int(float(text))
    if key in _FLOAT:
        return float(text) if text not in ("", None) else None
    if key in _BOOL:
        return str(text).lower() in ("true", "1", "yes")
    return text


def read_table(kind: str, public_dir: Path = PUBLIC_DIR) -> list[dict]:
    """Rows of one table as dicts with typed values (empty list when the file is absent)."""
    path = public_dir / f"{kind}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: _convert(k, v) for k, v in rec.items()} for rec in csv.DictReader(f)]


def write_table(kind: str, rows: list[dict], public_dir: Path = PUBLIC_DIR) -> Path:
    path = public_dir / f"{kind}.csv"
    cols = TABLE_COLUMNS[kind]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def load_rows(kind: str, public_dir: Path = PUBLIC_DIR) -> list:
    """Typed rows of one kind (`metric` is dropped: each kind has one metric)."""
    cls = ROW_TYPES[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    return [cls(**{k: v for k, v in rec.items() if k in fields}) for rec in read_table(kind, public_dir)]


def load_sources(public_dir: Path = PUBLIC_DIR) -> dict[str, Source]:
    data = yaml.safe_load((public_dir / "sources.yaml").read_text()) or {}
    return {sid: Source(id=sid, **{k: str(v) for k, v in rec.items()}) for sid, rec in data.items()}


@lru_cache(maxsize=4)
def _public_models(public_dir: Path) -> dict[str, dict]:
    path = public_dir / "models.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def model_spec(name: str, public_dir: Path = PUBLIC_DIR) -> ModelSpec:
    """A benchmarked model's shape: the model catalog, else calibration/public/models.yaml."""
    if name in catalog_names():
        return catalog_model(name)
    extra = _public_models(public_dir)
    if name not in extra:
        raise KeyError(f"model {name!r} is neither in the catalog nor in {public_dir}/models.yaml")
    fields = {k: v for k, v in extra[name].items() if k != "source"}
    return ModelSpec(name=name, **fields)
