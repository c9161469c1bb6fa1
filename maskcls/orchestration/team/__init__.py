"""Team mode: five members' servers meet in one team store (an MLflow tracking server with basic auth), where each
pushes runs and groups into an experiment only they may write, and pulls teammates' as ordinary read-only run
folders; groups split across servers claim their runs in a database all workers reach.

- store: the connection, who the caller is, each member's experiment, errors that name the host
- members: `team add-member` (the admin makes a member's account and experiment)
- bundle: a run as one checked file (a tar with a manifest of sha256s)
- push: a run's or a group's immutable version, then marked complete; old versions removed; `team rm`
- pull: a run or a group, one download, checked, figures recomputed (verify, repredict)
- records: the store's records as rows, each held to its owner's experiment
- claims: a group's planned runs claimed one by one in PostgreSQL under leases, none trained twice
- serve: `maskcls team serve`, the MLflow server command
"""
