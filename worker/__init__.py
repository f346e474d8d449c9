"""The greenlight worker type (worker/worker.py; `prefect worker start --type greenlight` imports it through the
`prefect.collections` entry point in pyproject.toml). Pure decisions in worker/decisions.py."""
