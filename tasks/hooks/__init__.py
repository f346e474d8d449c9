"""Hooks at a release's named points (tasks/spec/hooks.py): `job` runs a Kubernetes Job, `webhook` asks an HTTP
gate, `runner` runs them in the flows' timeline, records them on the Service (at most once per release) and
reports them. The decisions are pure, in tasks/decisions/hooks.py.
"""
