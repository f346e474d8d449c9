"""prefect.yaml deploys against a real Prefect server: every deployment is created with its entrypoint, work pool
and (inactive) schedule. Also guards the fastapi pin (a newer fastapi breaks `prefect deploy` against the 3.8.8
server)."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.release_helpers import ROOT


@pytest.mark.both_ends
def test_prefect_yaml_deploys_every_flow(prefect_ops):
    deployed = {(d["name"], d["entrypoint"], d["work_pool_name"]): d for d in prefect_ops.deployments.values()}
    wanted = {(d["name"], d["entrypoint"], d["work_pool"]["name"])
              for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert wanted <= set(deployed), sorted(deployed)
    blue_green = deployed[("blue-green", "flows/blue_green.py:blue_green_release", "greenlight")]
    assert [s["active"] for s in blue_green["schedules"]] == [False], "the example schedule stays off"
    # the spec model is the parameter schema: the UI renders a form from it and the server validates runs
    assert "BlueGreenSpec" in str(blue_green["parameter_openapi_schema"])


def test_the_pipeline_deployment_takes_the_pipeline_spec_and_refuses_a_bad_one(prefect_ops):
    """The `pipeline` deployment's form is the pipeline spec; a stage without targets or a negative parallelism
    is refused by the server before any flow run exists (409, as for the release specs)."""
    deployed = {d["name"]: d for d in prefect_ops.deployments.values()}
    assert deployed["pipeline"]["entrypoint"] == "flows/pipeline.py:pipeline_release"
    assert "PipelineSpec" in str(deployed["pipeline"]["parameter_openapi_schema"])
    assert deployed["pipeline-plan"]["parameters"] == {"dry_run": True}
    for stage in ({"name": "s", "targets": []},
                  {"name": "s", "max_parallel": 0, "targets": [{"context": "c", "service": "web"}]}):
        resp = prefect_ops.create_run("pipeline", {"spec": {"image": "app:2", "stages": [stage]}})
        assert resp.status_code == 409, f"{resp.status_code}: {resp.text[:1000]}"
