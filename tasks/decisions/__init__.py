"""Pure decisions from observed state: is the rollout done and why will it never be ready (`rollout`), which
color is live (`colors`), what the Service's EndpointSlices route to (`endpoints`), the guarded selector patch
(`traffic`), canary step counts (`canary`), whether an undo is safe (`undo`), the Lease (`lease`), smoke-check
verdicts (`smoke`); the record's pure data: the release record on the Service (`annotations`), the history entry
and its patch (`history`).

Rule (tested): nothing here imports Prefect or the Kubernetes client."""
