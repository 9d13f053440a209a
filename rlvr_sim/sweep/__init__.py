"""Sweeps (many plans through the simulator, in parallel), Pareto frontiers and the `plan` search.

Modules: `grid` (plans from --grid options or a file), `jobs` (one plan -> one row), `pools`
(inline / process pool / Ray), `store` (incremental, resumable results), `runner` (`run_sweep`),
`pareto` (hours vs dollars frontier), `space` (the allocation space), `planner` (the search),
`recommend` (the recommended plan and why).
"""
