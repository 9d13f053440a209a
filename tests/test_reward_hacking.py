"""Reward-hacking regression suite: one test per attack in `executor.reward_hacking.ATTACKS`.

Each attack is scored by a real VerifierPool running CodeTask.check (exactly as the executor
scores completions) and must get reward 0; the reference solution scored right after it in the
same pool must still get 1, and any host file the attack tries to create must not exist. Run the
whole suite with a table: `make reward-hacking`.
"""

import os

import pytest

from executor.reward_hacking import attack_problem, default_limits, score_attack
from executor.reward_hacking_attacks import ATTACKS
from executor.tasks.code import CodeTask
from executor.verifier import VerifierPool

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(CodeTask(limits=default_limits()), 2) as p:
        yield p


@pytest.fixture(scope="module")
def weak_pool():
    with VerifierPool(CodeTask(limits=default_limits("python")), 2) as p:
        yield p


def test_the_suite_has_at_least_thirty_distinct_attacks():
    names = [a.name for a in ATTACKS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert len({a.family for a in ATTACKS}) >= 10


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_contained(pool, attack):
    out = score_attack(pool, attack_problem(), attack)
    assert out.reward == 0.0, (attack.name, out.reason)
    assert out.reason and out.reason != "passed"
    assert out.pool_still_scores, f"{attack.name}: the reference no longer scores 1 after it"
    assert out.host_untouched, f"{attack.name}: created {attack.host_path}"


WEAK_HOLES = ("kill_parent", "kill_everyone", "posixsubprocess_fork_exec", "fork_bomb",
              "subprocess_shell", "write_host_tmp", "os_open_flags_write", "read_environment",
              "always_true_eq", "patch_launcher_encoder", "network_exfiltrate", "thread_bomb")


@pytest.mark.skipif(not ROOT, reason="without root the main test already runs the weak mode")
@pytest.mark.parametrize("name", WEAK_HOLES)
def test_attack_is_contained_in_the_weak_mode_too(weak_pool, name):
    attack = next(a for a in ATTACKS if a.name == name)
    out = score_attack(weak_pool, attack_problem(), attack)
    assert out.contained, (name, out)


def test_reference_and_a_real_solution_pass(pool):
    problem = attack_problem()
    other = "    s = a\n    s += b\n    return s\n"
    assert [r.reward for r in pool.score([(problem, problem.reference), (problem, other)])] == [1.0, 1.0]


def test_launcher_encoder_matches_the_trusted_encoder():
    """The launcher keeps its own copy of the typed-JSON rules (it imports nothing)."""
    import importlib.util
    from pathlib import Path

    import executor
    from executor import typed_json

    spec = importlib.util.spec_from_file_location(
        "_launcher", Path(executor.__file__).with_name("_sandbox_launcher.py"))
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    values = [None, True, 0, -5, 2**100, 1.5, float("inf"), float("nan"), "x", [1, (2, "a")],
              {"k": [None, False]}, (), []]
    for v in values:
        assert repr(launcher.encode(v)) == repr(typed_json.encode(v)), v
    for bad in ({1}, object(), {1: 2}, 2**5000, type("I", (int,), {})(3)):
        with pytest.raises(TypeError):
            launcher.encode(bad)
        with pytest.raises(TypeError):
            typed_json.encode(bad)
