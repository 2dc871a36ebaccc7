"""What DB Pulse does and keeps: every DBA action's ceremony and its audit, DB Pulse's own
schema, the migration runner, snapshots and history, the checks and the fleet built from the
reads, the weekly review, the alert log and the alert channels. Imports the reads and the
foundation, never a page, the agent or the CLI."""
