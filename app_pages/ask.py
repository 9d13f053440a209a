"""Ask page (the start page): one question in, a recommended plan out.

"N GPUs of type G, model M, P prompts x K samples, responses ~T up to L tokens, S steps (deadline
or budget): colocated or split, sync or async, hours and dollars?" The form starts at the
scenario schema's defaults (GPU type, prompts, samples, response lengths, steps) and the
working scenario's model; "Answer" runs the `plan` search (`api.plan` on
`api.question_plan_request`) and states the answer in words. "Open on Plan" makes the
recommended plan the working scenario, so Plan, Compare and Sweep continue from it.
"""

from __future__ import annotations

import streamlit as st
import yaml

from app_pages import fmt, planview, session, state, widgets
from rlvr_sim import api
from rlvr_sim.distributions import LogNormal
from rlvr_sim.errors import UserError
from rlvr_sim.scenario import Hardware, Sampler, Workload

PAGE_TITLE = "Ask a question"
RESULT = "ask:result"


def defaults() -> api.Question:
    """The schema's defaults (the working scenario's model): nothing invented here."""
    work = session.working()
    model = state.model_names()[0]
    source = work.source()
    if source is not None:
        try:
            model = state.load(source, check_fit=False).model.name or model
        except UserError:
            pass
    w = Workload()
    response = w.response_tokens
    return api.Question(gpus=Sampler().gpus, gpu=Hardware().gpu, model=model, prompts_per_step=w.prompts_per_step,
                        samples_per_prompt=w.samples_per_prompt,
                        typical_response_tokens=int(getattr(response, "mean", 1000)),
                        max_response_tokens=int(getattr(response, "cap", None) or 4 * getattr(response, "mean", 1000)),
                        steps=w.steps)


def question_form() -> tuple[api.Question, bool]:
    """The form, filled with the last question asked in this session (else the defaults)."""
    saved = st.session_state.get(RESULT)
    d = saved[0] if saved else defaults()
    with st.form("ask:form", enter_to_submit=False):
        c = st.columns(3)
        gpus = c[0].number_input("GPUs available", min_value=1, step=1, value=d.gpus, key="ask:gpus")
        gpu_names = state.gpu_names()
        gpu = c[1].selectbox("GPU type", gpu_names, index=gpu_names.index(d.gpu), key="ask:gpu")
        models = state.model_names()
        model = c[2].selectbox("Model", models, index=models.index(d.model) if d.model in models else 0,
                               key="ask:model")
        c = st.columns(3)
        prompts = c[0].number_input("Prompts per step", min_value=1, step=1, value=d.prompts_per_step,
                                    key="ask:prompts")
        samples = c[1].number_input("Samples per prompt", min_value=1, step=1, value=d.samples_per_prompt,
                                    key="ask:samples")
        steps = c[2].number_input("Run length (RL steps)", min_value=1, step=1, value=d.steps, key="ask:steps")
        c = st.columns(3)
        typical = c[0].number_input("Typical response (tokens)", min_value=1, step=1,
                                    value=d.typical_response_tokens, key="ask:typical",
                                    help="mean of the uncapped log-normal length distribution")
        longest = c[1].number_input("Longest response (tokens)", min_value=1, step=1, value=d.max_response_tokens,
                                    key="ask:max", help="lengths above are clipped (the cap)")
        price = c[2].number_input("$ per GPU-hour", value=d.usd_per_gpu_hour, min_value=0.0, key="ask:price",
                                  placeholder="the GPU's catalog price")
        c = st.columns(3)
        deadline = c[0].number_input("Deadline (hours)", value=d.deadline_hours, min_value=0.0, key="ask:deadline",
                                     placeholder="none: the fastest plan")
        budget = c[1].number_input("Budget ($)", value=d.budget_usd, min_value=0.0, key="ask:budget", placeholder="none")
        sim_steps = c[2].number_input("Steps simulated per plan", value=d.sim_steps, min_value=1, step=1,
                                      key="ask:sim_steps", placeholder="until steady (planner default)")
        asked = st.form_submit_button("Answer", type="primary")
    q = api.Question(int(gpus), str(gpu), str(model), int(prompts), int(samples), int(typical), int(longest),
                     int(steps), deadline_hours=deadline, budget_usd=budget, usd_per_gpu_hour=price,
                     sim_steps=None if sim_steps is None else int(sim_steps))
    return q, asked


def answer_text(q: api.Question, result: api.PlanResult) -> str:
    """The answer in words: placement, sync/async, hours and dollars, and what they rest on."""
    rec = result.recommendation
    a = rec.allocation
    if api.is_colocated(a.placement):
        where = f"**colocated**: sampler and trainer share all {a.total_gpus} GPUs (sampler TP {a.sampler_tp})"
    else:
        where = (f"**split**: {a.sampler_gpus} sampler GPUs (TP {a.sampler_tp}) and {a.trainer_gpus} trainer GPUs "
                 f"(TP {a.trainer_tp})")
    mode = "**sync**" if a.max_staleness == 0 else \
        f"**async**, samples at most {a.max_staleness} policy version(s) stale"
    unused = q.gpus - a.total_gpus
    spare = f" It uses {a.total_gpus} of the {q.gpus} GPUs." if unused > 0 else ""
    row = result.table[result.table["label"] == rec.label]
    price = float(row["cost.usd_per_gpu_hour"].iloc[0]) if not row.empty and "cost.usd_per_gpu_hour" in row else None
    at_price = f" at {fmt.usd(price)} per GPU-hour" if price is not None else ""
    sigma = api.default_response_sigma() if q.response_sigma is None else q.response_sigma
    lengths = LogNormal(mean=q.typical_response_tokens, sigma=sigma, cap=q.max_response_tokens)
    return (f"- Colocated or split: {where}.\n- Sync or async: {mode}.\n"
            f"- Hours and dollars: **{fmt.hours(rec.hours_total)}** and **{fmt.usd(rec.usd_total)}** for "
            f"{q.steps:,} steps{at_price} ({rec.rule}).{spare}\n"
            f"- Based on: {planview.steps_text(result)} (the steady-state mean after the "
            f"warm-up, times {q.steps:,} steps); response lengths log-normal with mean "
            f"{q.typical_response_tokens:,} before the cap at {q.max_response_tokens:,} (mean drawn "
            f"{fmt.number(lengths.mean_value())} tokens), spread sigma {fmt.exact(sigma)}"
            f"{' (the schema default)' if q.response_sigma is None else ''}.\n")


def open_on_plan(q: api.Question, result: api.PlanResult) -> None:
    """Make the recommended plan the working scenario (knobs for the fields Plan shows)."""
    knob_fields = {k.field for k in widgets.KNOBS}
    source = state.source_from_upload("question.yaml", yaml.safe_dump(api.question_scenario(q), sort_keys=False))
    base = state.resolved_dict(state.load(source, check_fit=False))
    knobs, extra = {}, []
    for item in result.recommended_overrides():
        key, _, text = item.partition("=")
        value = yaml.safe_load(text)
        if widgets.get_path(base, key) == value:       # already the question's value: not a change
            continue
        if key in knob_fields:
            knobs[key] = value
        else:
            extra.append(item)
    session.use_base(upload=source, knobs=knobs, extra=tuple(extra), sim_steps=result.steps_per_plan)


def render() -> None:
    st.title(PAGE_TITLE)
    st.caption("Describe the run; the planner searches placements, splits, parallelism and sync/async for it. "
               "Fields start at the scenario schema's defaults; everything not asked here keeps its default "
               "(edit it on Plan afterwards).")
    q, asked = question_form()
    if asked:
        try:
            slot, tick = planview.counter("plan search")
            with st.spinner("Searching plans..."):
                st.session_state[RESULT] = (q, api.plan(api.question_plan_request(q), on_outcome=tick))
            slot.empty()
        except UserError as exc:
            widgets.error_box(str(exc))
            return
    saved = st.session_state.get(RESULT)
    if not saved:
        return
    q_saved, result = saved
    if q_saved != q:
        st.info("The question changed since this answer; press Answer to update it.")
    st.subheader("Answer")
    st.markdown(answer_text(q_saved, result))
    if st.button("Open this plan on Plan", type="primary", key="ask:open"):
        open_on_plan(q_saved, result)
        st.switch_page("app_pages/plan.py")
    planview.show_plan(result, "ask:plan")


if __name__ == "__main__":  # st.Page runs this file as __main__; importing it renders nothing
    widgets.run_page(render, "ask")
