"""`greenlight pipeline run --spec FILE [--dry-run] [--id ID]` and `greenlight pipeline status ID [--json]`
(flows/pipeline.py). A target's `manifest:` may name a YAML file, read relative to the spec file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect_greenlight.tasks.decisions.pipeline import resume_point, target_done
from prefect_greenlight.tasks.errors import BadInput, PipelineFailed
from prefect_greenlight.tasks.spec import load_yaml_documents, parse_spec
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec


def add_parsers(sub, parser_class) -> None:
    pl = sub.add_parser("pipeline", help="promote one version through stages of targets across clusters")
    psub = pl.add_subparsers(dest="pipeline_command", required=True, parser_class=parser_class)
    run = psub.add_parser("run", help="run a pipeline (or print every target's plan with --dry-run)")
    run.add_argument("--spec", required=True, help="pipeline spec (YAML)")
    run.add_argument("--id", dest="pipeline_id", help="pipeline id (default: the spec's, else generated); the "
                     "same id again resumes after the last stage that passed")
    run.add_argument("--kubeconfig", help="kubeconfig with a context per target cluster (default: $KUBECONFIG)")
    run.add_argument("--dry-run", action="store_true", help="print every target's plan; change nothing")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    st = psub.add_parser("status", help="where a pipeline is, from the clusters and Prefect")
    st.add_argument("pipeline_id", help="the pipeline's id (its spec's pipeline_id, or run's --id)")
    st.add_argument("--spec", help="the pipeline spec (default: the one its Prefect flow run was given)")
    st.add_argument("--kubeconfig", help="kubeconfig with a context per target cluster (default: $KUBECONFIG)")
    st.add_argument("--json", action="store_true", help="print the status as JSON")


def load_pipeline_spec(path: str, pipeline_id: str | None = None) -> PipelineSpec:
    docs = load_yaml_documents(path)
    if len(docs) != 1:
        raise BadInput(f"{path}: a pipeline spec is one YAML document, not {len(docs)}")
    data = docs[0]
    for stage in data.get("stages") or []:
        for target in (stage.get("targets") or []) if isinstance(stage, dict) else []:
            if isinstance(target, dict) and isinstance(target.get("manifest"), str):
                manifest = Path(path).parent / target["manifest"]
                found = load_yaml_documents(manifest)
                if len(found) != 1:
                    raise BadInput(f"{manifest}: a target's manifest is one Deployment, not {len(found)} documents")
                target["manifest"] = found[0]
    if pipeline_id:
        data["pipeline_id"] = pipeline_id
    return parse_spec(PipelineSpec, data, source=path)


def print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
        return
    if result.get("plan_text"):  # a dry run: the pipeline's own steps, then each target's plan
        print(result["plan_text"])
        print()
    for plan in result.get("plans", []):
        print(f"=== stage {plan['stage']}, target {plan['target']} ({plan['where']})")
        print(plan["plan_text"])
        print()
    print(f"pipeline {result['pipeline_id']}: {result['outcome']} ({result.get('message', '')})")
    print(result["table"])


def cmd_run(args: argparse.Namespace, quiet) -> int:
    spec = load_pipeline_spec(args.spec, args.pipeline_id)
    quiet()
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect import tags

    from prefect_greenlight.flows.pipeline import new_pipeline_id, pipeline_release

    spec = spec.model_copy(update={"pipeline_id": spec.pipeline_id or new_pipeline_id()})
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.tasks.pipeline.targets import resolve

    resolve(spec, spec.pipeline_id, args.kubeconfig)  # unknown contexts, bad release options: before any flow run
    try:
        with tags(f"greenlight.pipeline:{spec.pipeline_id}"):
            result = pipeline_release(spec=spec, dry_run=args.dry_run, kubeconfig=args.kubeconfig)
    except PipelineFailed as exc:
        print_result(exc.result, args.json)
        raise
    print_result(result, args.json)
    return 0


def _prefect_runs(pipeline_id: str) -> list[dict]:
    """The pipeline's flow runs (its own and its targets'), newest first; [] when Prefect cannot be reached."""
    try:
        # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
        from prefect.client.schemas.sorting import FlowRunSort

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(
                all_=[f"greenlight.pipeline:{pipeline_id}"])), sort=FlowRunSort.START_TIME_DESC, limit=200)
    except Exception:  # noqa: BLE001 - the clusters still answer
        return []
    return [{"id": str(r.id), "name": r.name, "state": r.state.type.value if r.state else "?",
             "message": (r.state.message or "") if r.state else "",
             "tags": list(r.tags), "parameters": r.parameters,
             "pipeline": not any(t.startswith("greenlight.stage:") for t in r.tags)} for r in runs]


def pipeline_status(pipeline_id: str, spec: PipelineSpec | None, kubeconfig: str | None) -> dict:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.tasks.pipeline.targets import history_of, resolve, serving_now

    runs = _prefect_runs(pipeline_id)
    own = [r for r in runs if r["pipeline"]]
    if spec is None:
        if not own or "spec" not in own[0]["parameters"]:
            raise BadInput(f"no Prefect flow run of pipeline {pipeline_id} found: give its spec with --spec")
        spec = PipelineSpec.model_validate(own[0]["parameters"]["spec"])
    stages = resolve(spec, pipeline_id, kubeconfig)
    rows, done = [], []
    for row in stages:
        flags = []
        for t in row:
            history = history_of(t)
            mine = [e for e in history if e.pipeline_id == pipeline_id and e.pipeline_target == t.name]
            flags.append(target_done(history, pipeline_id, t.stage.name, t.name))
            rows.append({"stage": t.stage.name, "target": t.name, "context": t.target.cluster,
                         "namespace": t.target.namespace, "service": t.target.service,
                         "last": f"{mine[-1].strategy} {mine[-1].outcome}" if mine else "not released",
                         "released": flags[-1], "serving": serving_now(t)})
        done.append(flags)
    point = resume_point(done)
    return {"pipeline_id": pipeline_id, "state": own[0]["state"] if own else "unknown (no Prefect flow run)",
            "state_message": own[0]["message"] if own else "",
            "flow_run_id": own[0]["id"] if own else "", "next": point.describe([s.name for s in spec.stages]),
            "targets": rows, "child_runs": [{k: r[k] for k in ("id", "name", "state")} for r in runs
                                            if not r["pipeline"]]}


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_pipeline_spec(args.spec, args.pipeline_id) if args.spec else None
    status = pipeline_status(args.pipeline_id, spec, args.kubeconfig)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(f"pipeline {status['pipeline_id']}: {status['state']} {status['flow_run_id']}; {status['next']}")
    if status["state_message"]:
        print(f"  {status['state_message']}")  # e.g. who rejected the gate, and why
    for r in status["targets"]:
        print(f"  {r['stage']:<12} {r['target']:<14} {r['context']}:{r['namespace']}/{r['service']:<20} "
              f"{r['last']:<24} serving {r['serving']}")
    return 0
