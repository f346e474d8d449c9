"""Pure decisions from observed state: is the rollout done and why will it never be ready (`rollout`), which
color is live (`colors`), what the Service's EndpointSlices route to (`endpoints`), the guarded selector patch
(`traffic`), canary step counts (`canary`), what to undo (`undo`), the Lease (`lease`), smoke-check verdicts
(`smoke`).

Rule (tested): nothing here imports Prefect or the Kubernetes client."""
