"""Discrete-event simulator of the RLVR loop: sampler replicas, verifier pool, trainer, weight
sync, under colocated/disaggregated sync and bounded-staleness async orchestration."""

from rlvr_sim.sim.config import Constant, SimConfig
from rlvr_sim.sim.metrics import Summary
from rlvr_sim.sim.run import SimResult, simulate, simulate_config

__all__ = ["Constant", "SimConfig", "SimResult", "Summary", "simulate", "simulate_config"]
