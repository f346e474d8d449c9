"""Where greenlight meets Prefect's runtime. `private_api` is the one module allowed to touch Prefect's private
parts; everything else uses Prefect's public API. `blocks` loads a block document by name with errors naming the
block, never quoting its data; `secrets` (webhook headers from Secret blocks), `variables` (the allow-list Variable).
The runtime of a release: `cancellation` (cancel = rollback, deferred SIGTERM), `starting` (start retries),
`pause` and `approval` (the one pause, the approval form), `dead_runs` (ending a dead holder's run, answering only
a live one), `lease` (the Service's Lease held by a flow run), `automations` (webhooks on release events)."""
