"""Thin Kubernetes I/O: the client with retries (`client`), watches (`watching`), waits (`waiting`), read-only
views (`observe`), port-forward tunnels (`portforward`), permission checks (`permissions`) and the per-Service
Lease (`lease`). Decisions are taken in `tasks.decisions`; these modules only read and write the cluster."""
