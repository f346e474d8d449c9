#!/usr/bin/env bash
# `make demo`: the first tutorial, end to end, on the local cluster, driven by greenlight.
#   blue-dep serves -> release green-dep (smoke test, automatic approval, switch, EndpointSlices verified,
#   blue scaled to 0 after the delay) -> status -> rollback -> status.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ns=${DEMO_NAMESPACE:-greenlight-demo}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok) and a Prefect server"
eval "$(.venv/bin/python -m tests.cluster.launcher up | grep '^export')"
eval "$(bash hack/prefect-server.sh up)"
export PATH="$root/.venv/bin:$PATH"
kubectl get nodes

step "2. blue: the tutorial's blue-dep.yaml and production-svc-blue.yaml, unchanged"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" apply -f examples/tutorial1/blue-dep.yaml -f examples/tutorial1/production-svc-blue.yaml
kubectl -n "$ns" rollout status deployment/blue-dep --timeout=90s
greenlight status -n "$ns" --service production-svc

step "3. release green-dep.yaml blue -> green (smoke test, auto approval, switch, verify, cleanup)"
greenlight blue-green -n "$ns" --service production-svc --manifest examples/tutorial1/green-dep.yaml \
  --smoke-path / --body-contains "IMAGE_COLOR: green" --scale-down-delay 3

step "4. what the Service serves now"
greenlight status -n "$ns" --service production-svc
pod=$(kubectl -n "$ns" get endpointslices -l kubernetes.io/service-name=production-svc \
  -o jsonpath='{.items[0].endpoints[0].targetRef.name}')
kubectl -n "$ns" port-forward "pod/$pod" 18080:80 >/dev/null 2>&1 & pf=$!
sleep 1.5; curl -s --max-time 5 http://127.0.0.1:18080/ | grep -E "Pod:|IMAGE_COLOR" || true; kill $pf 2>/dev/null || true
# ... and through the Service's ClusterIP, as clients see it: kube-proxy in the cluster's network namespace
# (10.x addresses exist only in there) picks a pod per connection.
vip=$(kubectl -n "$ns" get service production-svc -o jsonpath='{.spec.clusterIP}')
for _ in 1 2 3; do
  ip netns exec "$GREENLIGHT_NETNS" curl -s --max-time 5 "http://$vip:8080/" | grep -E "Pod:|IMAGE_COLOR" || true
done

step "5. roll back to blue"
greenlight rollback -n "$ns" --service production-svc --scale-down-delay 3
greenlight status -n "$ns" --service production-svc

step "done"
echo "The cluster and the Prefect server are still running: Prefect UI at ${PREFECT_API_URL%/api}"
echo "  export KUBECONFIG=$KUBECONFIG PREFECT_API_URL=$PREFECT_API_URL \\"
echo "    PREFECT_CLIENT_MAX_RETRIES=$PREFECT_CLIENT_MAX_RETRIES PREFECT_CLIENT_RETRY_JITTER_FACTOR=$PREFECT_CLIENT_RETRY_JITTER_FACTOR"
echo "  (SQLite, one writer at a time: for many releases at once, see the README's \"When to move to PostgreSQL\")"
echo "  make down    # stops both"
