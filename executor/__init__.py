"""The real GRPO executor: sample -> verify -> train on torch + transformers, traced like the simulator.

One module per role:
    tokenizer   character-level tokenizer for random-init tiny models
    policy      build (random init from a config) or load (local HF dir) a causal LM; device/dtype/threads
    tasks/      problem generators + checkers (the checker is the reward): math, countdown, code
    sandbox     subprocess sandbox for running untrusted code (code task)
    verifier    a real process pool that scores completions and records each verification's latency
    sampler     the `Sampler` interface + the HF transformers backend (KV cache, k samples per prompt)
    trainer     GRPO loss/advantages + the optimisation step, timed per phase
    weight_sync trainer -> sampler weight copy, timed
    sft         short supervised warm-start
    checkpoint  what a checkpoint holds (torch state, RNGs, run state) and restoring it
    checkpoint_store  the atomic, verified checkpoint folder and the resume point (no torch)
    tracing     trace events (rlvr_sim.trace schema) + per-step learning metrics
    records     what one step writes (generate/trainer/weight_sync rows, StepMetrics), once
    run         the run builder of every entry point (seed, policy, warm-start, run summary)
    results     the typed results: ExecuteResult (result.json, --json), Evals, SelfImproveResult
    steps       one synchronous colocated RL step (+ dynamic sampling), held-out evaluation
    loop        synchronous colocated GRPO
    channels    orchestration settings, the sampler process and its queues
    orchestrator  dispatch by backend and orchestration (run_scenario); orchestrator_trainer /
                sampler_worker: the trainer and sampler sides of disaggregated/async runs
    self_improve  expert iteration;  trl_backend: TRL's GRPOTrainer, traced like ours
    cli         `rlvr-sim execute`
"""
