"""Pages of the Streamlit app (app.py) and their shared helpers.

plan.py, compare.py, sweep.py, calibration.py are page scripts run by `st.navigation`;
state.py (cached library calls), widgets.py and charts.py are plain modules they import.
"""
