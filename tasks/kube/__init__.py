"""Thin Kubernetes I/O: the client with retries (`client`), watches (`watching`), waits (`waiting`), read-only
views (`observe`), port-forward tunnels (`portforward`), permission checks (`permissions`), the per-Service
Lease (`lease`), hook Jobs (`jobs`) and the history's write (`history`). Decisions are taken in `tasks.decisions`;
these modules only read and write the cluster: no record, no Prefect (a named cluster block is read through
prefect-kubernetes, `credentials`)."""
