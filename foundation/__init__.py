"""The foundation every other layer stands on: configuration and secrets, connections and the
plan login, identifiers, frames and column specifications, formats for people, access and
roles, the plan and the migration files as data. It imports nothing of DB Pulse's above it."""
