"""The building blocks of a release, one wing per concern (see the README's Layout):

  errors.py        the errors a user can act on; imports nothing of greenlight
  spec/            the typed release specs (pydantic): what the user asked for
  decisions/       pure functions deciding from observed state, and the record's pure data (annotations,
                   history entries): no Prefect, no Kubernetes client
  kube/            thin Kubernetes I/O: the client, watches, waits, port-forward, permissions, the Lease, the
                   history's write; no Prefect, no record
  record/          what a release leaves behind: journal, history's run identity, events, reports
  prefect_adapter/ Prefect's runtime: cancellation, start retries, dead runs, pauses and approval, blocks,
                   automations, the flow run's Lease
  engine/          the one executor, its steps, the undo stack, the report-only runs
  hooks/           release hooks (Jobs, webhooks) as steps
  bluegreen/       the blue-green release steps
  canary/          the canary release steps and their analysis providers
  pipeline/        a pipeline's reads of its clusters

Each wing imports only the wings below it (README "Layout", checked by tests/unit/test_layout.py).
"""
