"""The building blocks of a release, one wing per concern (see the README's Layout):

  spec/       the typed release specs (pydantic): what the user asked for
  decisions/  pure functions deciding from observed state: no Prefect, no Kubernetes client
  kube/       thin Kubernetes I/O: the client, watches, waits, port-forward, permissions, the Lease
  bluegreen/  the blue-green release steps
  canary/     the canary release steps and their analysis providers
  record/     what a release leaves behind: journal, history, events, reports, approval, annotations
"""
