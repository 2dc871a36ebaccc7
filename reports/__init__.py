"""The weekly review as charts, a self-contained HTML report and a Markdown summary. No
Streamlit here: the review page, `cli.py report` and the tests all use it."""
