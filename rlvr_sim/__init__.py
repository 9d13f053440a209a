"""rlvr-sim: capacity planning for RL-with-verifiable-rewards (GRPO) training.

The simulator side (this package) never imports torch or vLLM; the real executor lives in
`executor/` and calibration in `calibration/`.
"""

__version__ = "0.1.0"
