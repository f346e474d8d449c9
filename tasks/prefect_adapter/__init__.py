"""Where greenlight meets Prefect's runtime. `private_api` is the one module allowed to touch Prefect's private
parts; everything else uses Prefect's public API. `blocks` loads a block document by name (a cluster config, a
Secret) with errors naming the block, never quoting its data."""
