"""The agent: DB Pulse running by itself (cli.py agent). Never imports streamlit."""
