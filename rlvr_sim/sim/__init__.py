"""Discrete-event simulator of the RLVR loop: sampler replicas, verifier pool, trainer, weight
sync, under colocated/disaggregated sync and bounded-staleness async orchestration."""

from rlvr_sim.sim import compiled

compiled.use_current()      # the mypyc build of the engine if it is current, else the sources

from rlvr_sim.sim.config import Constant, SimConfig  # noqa: E402
from rlvr_sim.sim.metrics import Summary  # noqa: E402
from rlvr_sim.sim.run import SimResult, simulate, simulate_config  # noqa: E402

__all__ = ["Constant", "SimConfig", "SimResult", "Summary", "simulate", "simulate_config"]
