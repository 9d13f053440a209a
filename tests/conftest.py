"""Shared test settings: a modest hypothesis profile so the whole suite stays fast on 2 cores.

HYPOTHESIS_PROFILE=thorough raises the example counts for a local deep run.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tests simulate for real: no result read from (or left in) the user's on-disk result cache
# (rlvr_sim.sweep.result_cache); tests of the cache point it at a temporary folder.
os.environ["RLVR_SIM_CACHE"] = "off"
