#!/usr/bin/env bash
# The first tutorial's blue-green-deploy.sh (../shared/seeds/000_*.txt, "자동화 스크립트"), re-implemented step by
# step as the baseline of bench P3/P4. Changes, all required by the brief or by a bug of the original:
#   - the built kubectl ($KUBECTL) and namespace $NAMESPACE; manifests from $MANIFESTS (default examples/tutorial1)
#   - step 2: the original's `kubectl wait -l ...` right after `apply` fails at once with "no matching resources
#     found" when the new pods do not exist yet (and the original goes on regardless); here it is retried until the
#     pods exist (every try is counted in P4). That is the smallest fix that keeps the tutorial's command.
#   - step 3: the health check goes through `kubectl port-forward` + curl (the original `kubectl exec`s curl in the
#     pod; the local cluster's pods run no process)
#   - step 5: its `sleep 5` removed
#   - step 6: the interactive prompt removed; the answer is "n" (blue kept, like greenlight --cleanup keep)
#   - $SMOKE_ATTEMPTS (default 1, the tutorial's single check): P5 sets 15, 1 s apart, the same patience greenlight
#     gets there (bench/concurrent.py PATIENT_SMOKE: the local cluster's app plane lags when ~150 pods turn Ready)
# Usage: KUBECTL=... KUBECONFIG=... NAMESPACE=... bench/blue-green-deploy.sh blue green
set -u

CURRENT_COLOR=$1 # blue or green
NEW_COLOR=$2     # green or blue
KUBECTL=${KUBECTL:?set KUBECTL to the built kubectl}
NAMESPACE=${NAMESPACE:?set NAMESPACE}
MANIFESTS=${MANIFESTS:-$(cd "$(dirname "$0")/.." && pwd)/examples/tutorial1}
k() { "$KUBECTL" -n "$NAMESPACE" "$@"; }

echo "=== Blue-Green Deployment ==="
echo "Current: $CURRENT_COLOR"
echo "New: $NEW_COLOR"

# 1. deploy the new version
echo "1. Deploying $NEW_COLOR environment..."
k apply -f "$MANIFESTS/${NEW_COLOR}-dep.yaml"

# 2. wait until its pods are ready (retried while they do not exist yet, see above)
echo "2. Waiting for $NEW_COLOR pods to be ready..."
deadline=$((SECONDS + 300))
until k wait --for=condition=ready pod -l "target=${NEW_COLOR}-dep" --timeout=300s 2>/dev/null; do
  if [ $SECONDS -ge $deadline ]; then echo "❌ $NEW_COLOR pods not ready."; exit 1; fi
  sleep 0.1
done

# 3. smoke test: /health of the first new pod, through kubectl port-forward ($SMOKE_ATTEMPTS tries, 1 s apart)
echo "3. Running smoke tests..."
smoke() {
  NEW_POD=$(k get pod -l "target=${NEW_COLOR}-dep" -o jsonpath='{.items[0].metadata.name}')
  pf_log=$(mktemp)
  "$KUBECTL" -n "$NAMESPACE" port-forward "pod/$NEW_POD" :80 >"$pf_log" 2>&1 &  # not via k(): $! must be kubectl
  pf=$!
  port=""
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$pf_log" | head -1)
    [ -n "$port" ] && break
    kill -0 $pf 2>/dev/null || break
    sleep 0.05
  done
  HEALTH_STATUS=failed
  if [ -n "$port" ]; then
    HEALTH_STATUS=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 "http://127.0.0.1:$port/health" || echo "failed")
  fi
  kill $pf 2>/dev/null; wait $pf 2>/dev/null; rm -f "$pf_log"
}
attempt=1
smoke
while [ "$HEALTH_STATUS" != "200" ] && [ "$attempt" -lt "${SMOKE_ATTEMPTS:-1}" ]; do
  attempt=$((attempt + 1)); sleep 1; smoke
done

if [ "$HEALTH_STATUS" != "200" ]; then
  echo "❌ Health check failed ($HEALTH_STATUS). Aborting deployment."
  exit 1
fi

# 4. switch traffic
echo "4. Switching traffic to $NEW_COLOR..."
k apply -f "$MANIFESTS/production-svc-${NEW_COLOR}.yaml"

# 5. verify (the original sleeps 5 s first)
echo "5. Verifying deployment..."
k get service production-svc
k get endpoints production-svc

# 6. clean up the previous version: the original asks; the answer here is "n" (keep)
REPLY=n
if [[ $REPLY =~ ^[Yy]$ ]]; then
  k delete deployment "${CURRENT_COLOR}-dep"
fi

echo "✅ Deployment complete!"
