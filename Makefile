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

.PHONY: venv demo test test-slow app clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: on CPU machines this is the local CPU wheel; a bare `torch`
	# requirement from trl/accelerate would otherwise resolve a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: venv
	$(VENV)/bin/rlvr-sim describe scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml
	$(VENV)/bin/rlvr-sim simulate scenarios/nemo-rl-llama3.1-8b-onpolicy.yaml --steps 20

test: venv
	$(PY) -m pytest -q -m "not slow"

test-slow: venv
	$(PY) -m pytest -q -m slow

app: venv
	$(VENV)/bin/streamlit run app.py --server.headless true --server.address localhost

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
