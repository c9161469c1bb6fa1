"""Team mode: five members' servers meet in one team store (an MLflow tracking server), where each pushes runs and
pulls teammates' runs as ordinary read-only run folders; groups split across servers claim their runs in a
database all workers reach.

- store: the connection, credentials from the environment, errors that name the host
- transfer: push (an immutable version, then marked complete) and pull (atomic, resumable, checked)
- claims: a group's planned runs claimed one by one in PostgreSQL, none trained twice
- serve: `maskcls team serve`, the MLflow server command
"""
