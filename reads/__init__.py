"""What a target and its Redis hold, one module per concern (statements, indexes, bloat, vacuum,
cache, activity, replication, views and their schedules, probes …): plain functions over a
connection that return frames or small dataclasses, with the action that mends the concern
where it is one statement (a view's refresh, a schedule). Imports only the foundation."""
