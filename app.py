"""rlvr-sim capacity-planning app: `make app` (or `streamlit run app.py`).

A thin entry point: it only declares the pages. Each page is a small module under app_pages/
that drives `rlvr_sim` through its typed API (`rlvr_sim.api`, cached in app_pages/state.py) and
holds no business numbers of its own. / opens "Ask a question"; every other page has its own
path (/plan, /compare, /sweep, /calibration), so a link to a page opens that page.
"""

import streamlit as st

st.set_page_config(page_title="rlvr-sim planner", layout="wide")

PAGES = [
    st.Page("app_pages/ask.py", title="Ask a question", default=True),
    st.Page("app_pages/plan.py", title="Plan", url_path="plan"),
    st.Page("app_pages/compare.py", title="Compare", url_path="compare"),
    st.Page("app_pages/sweep.py", title="Sweep", url_path="sweep"),
    st.Page("app_pages/calibration.py", title="Calibration", url_path="calibration"),
]

st.navigation(PAGES).run()
