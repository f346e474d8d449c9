"""The `greenlight` command line: parses flags into release specs and runs the flows in this process.
May import everything below it (flows, tasks)."""
