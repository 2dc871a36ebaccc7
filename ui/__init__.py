"""The Streamlit side of DB Pulse: session context, cached loaders and small widgets.
Only the pages and app.py import this package; the core layers (foundation/, reads/, operations/) never do."""
