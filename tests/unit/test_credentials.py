"""Where the Kubernetes credentials come from (tasks/kube/credentials.py): the choice of source, the cluster block
read through a fake KubernetesClusterConfig, the errors that name the block, and the secret never in a name."""

from __future__ import annotations

import sys

import pytest
from kubernetes import client

from prefect_greenlight.cli.main import main
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.kube import credentials
from prefect_greenlight.tasks.kube.client import connect
from prefect_greenlight.tasks.kube.credentials import (
    CredentialSource,
    SourceKind,
    block_name,
    choose_source,
    context_namespace,
    load_cluster_block,
)
from prefect_greenlight.tasks.pipeline.targets import target_credentials
from prefect_greenlight.tasks.prefect_adapter.dead_runs import answer_credentials
from prefect_greenlight.tasks.spec.pipeline import PipelineSpec, target_name

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw"
KUBECONFIG = {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
              "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443",
                                                         "insecure-skip-tls-verify": True}}],
              "users": [{"name": "greenlight", "user": {"token": TOKEN}}],
              "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "greenlight", "namespace": "shop"}},
                           {"name": "other", "context": {"cluster": "local", "user": "greenlight"}}]}


def choose(kubeconfig=None, context=None, block=None, env="", exists=False) -> CredentialSource:
    return choose_source(kubeconfig, context, block, env_kubeconfig=env, home_kubeconfig="/home/u/.kube/config",
                         exists=lambda _path: exists)


@pytest.mark.parametrize("given, expected", [
    (dict(block="prod"), CredentialSource(SourceKind.BLOCK, block="prod")),
    (dict(block="kubernetes-cluster-config/prod", context="other"),
     CredentialSource(SourceKind.BLOCK, context="other", block="prod")),
    (dict(block="prod", env="/env/kubeconfig", exists=True), CredentialSource(SourceKind.BLOCK, block="prod")),
    (dict(kubeconfig="/k", context="c"), CredentialSource(SourceKind.KUBECONFIG, path="/k", context="c")),
    (dict(env="/env/kubeconfig", exists=True), CredentialSource(SourceKind.KUBECONFIG, path="/env/kubeconfig")),
    (dict(exists=True), CredentialSource(SourceKind.KUBECONFIG, path="/home/u/.kube/config")),
    (dict(), CredentialSource(SourceKind.IN_CLUSTER)),
])
def test_the_source_is_a_named_block_else_a_kubeconfig_else_in_cluster(given, expected):
    assert choose(**given) == expected


def test_a_kubeconfig_and_a_block_together_are_bad_input_naming_both():
    with pytest.raises(BadInput, match=r"both a kubeconfig \(/k\) and a cluster block \(prod\)"):
        choose(kubeconfig="/k", block="prod")


@pytest.mark.parametrize("name", ["Prod", "prod_cluster", "", "kubernetes-cluster-config/", "a/b"])
def test_a_name_prefect_cannot_hold_is_bad_input(name):
    with pytest.raises(BadInput, match="lowercase letters, digits and dashes"):
        block_name(name)


def test_sources_describe_themselves_by_name_only():
    assert CredentialSource(SourceKind.BLOCK, block="prod").describe("sa") == \
        "Prefect block kubernetes-cluster-config/prod context sa"
    assert CredentialSource(SourceKind.KUBECONFIG, path="/k", context="c").describe() == "kubeconfig /k context c"
    assert CredentialSource(SourceKind.IN_CLUSTER).describe() == "in-cluster service account"


class FakeBlockClass:
    """KubernetesClusterConfig.load as prefect-kubernetes has it: ValueError for a missing document."""

    stored: dict = {}

    def __init__(self, config, context_name):
        self.config, self.context_name = config, context_name

    @classmethod
    def load(cls, name, _sync=None):
        if name not in cls.stored:
            raise ValueError(f"Unable to find block document named {name} for block type kubernetes-cluster-config")
        value = cls.stored[name]
        if isinstance(value, Exception):
            raise value
        return cls(*value)


class FakeSecretDict:
    def __init__(self, value):
        self._value = value

    def get_secret_value(self):
        return self._value


@pytest.fixture
def blocks(monkeypatch):
    monkeypatch.setattr(FakeBlockClass, "stored", {})
    monkeypatch.setattr(credentials, "_block_class", lambda: FakeBlockClass)
    return FakeBlockClass.stored


def test_a_missing_block_is_bad_input_naming_it(blocks):
    with pytest.raises(BadInput, match=r"no Prefect block kubernetes-cluster-config/prod .*from_file"):
        load_cluster_block("prod")


def test_a_block_that_does_not_validate_is_refused_without_quoting_its_data(blocks):
    blocks["prod"] = ValueError(f"1 validation error ... input_value={{'token': '{TOKEN}'}}")
    with pytest.raises(BadInput) as err:
        load_cluster_block("prod")
    assert TOKEN not in str(err.value) and "cannot be read as a KubernetesClusterConfig" in str(err.value)


def test_a_secret_dict_config_is_unwrapped_and_the_loaded_block_never_prints_its_kubeconfig(blocks):
    blocks["prod"] = (FakeSecretDict(KUBECONFIG), "sa")
    block = load_cluster_block("prod")
    assert block.config == KUBECONFIG and block.context_name == "sa"
    assert TOKEN not in repr(block) and TOKEN not in str(block) and "prod" in repr(block)


def test_connect_with_a_block_builds_its_own_configuration_and_names_the_block(blocks):
    blocks["prod"] = (KUBECONFIG, "sa")
    default_before = client.Configuration.get_default_copy().host
    kube = connect(cluster_config="prod")
    cfg = kube.api.configuration
    assert cfg.host == "https://127.0.0.1:6443" and cfg.retries is False
    # the header the client sends (kubernetes 34 keys the token "authorization", 37 "BearerToken")
    assert [a["value"] for a in cfg.auth_settings().values() if a["key"] == "authorization"] == [f"Bearer {TOKEN}"]
    assert kube.config_source == "Prefect block kubernetes-cluster-config/prod context sa"
    assert client.Configuration.get_default_copy().host == default_before, "the global default is left alone"
    other = connect(context="other", cluster_config="prod")
    assert other.config_source == "Prefect block kubernetes-cluster-config/prod context other"


def test_connect_with_a_kubeconfig_and_a_block_changes_nothing_and_says_so(blocks):
    with pytest.raises(BadInput, match="name one source"):
        connect("/some/kubeconfig", None, "prod")


def test_without_the_extra_a_block_is_bad_input_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "prefect_kubernetes.credentials", None)  # import fails: not installed
    with pytest.raises(BadInput, match=r"install prefect-greenlight\[blocks\]"):
        load_cluster_block("prod")


def test_the_cli_refuses_a_kubeconfig_and_a_cluster_block_together(capsys):
    code = main(["status", "--service", "web", "--kubeconfig", "/k", "--cluster-block", "prod"])
    assert code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_the_cli_default_namespace_is_the_block_contexts(blocks, monkeypatch):
    from prefect_greenlight.cli import cluster_args

    blocks["prod"] = (KUBECONFIG, "sa")
    args = cluster_args.argparse.Namespace(namespace=None, cluster_block="prod", context=None, kubeconfig=None)
    assert cluster_args.default_namespace(args) == "shop"
    assert context_namespace(KUBECONFIG, "other") is None
    assert context_namespace(KUBECONFIG, None) == "shop"


def test_answers_read_the_lease_with_the_flags_else_the_runs_own_source():
    run = {"kubeconfig": None, "context": "sa", "cluster_config": "prod"}
    assert answer_credentials(run, None, None, None) == (None, "sa", "prod")
    assert answer_credentials(run, "/k", None, None) == ("/k", "sa", None)
    assert answer_credentials({"kubeconfig": "/run"}, None, None, "mine") == (None, None, "mine")


def pipeline(*targets: dict) -> PipelineSpec:
    return PipelineSpec.model_validate({"image": "app:2", "stages": [{"name": "prod", "targets": list(targets)}]})


def test_a_pipeline_target_names_a_context_or_a_cluster_block():
    spec = pipeline({"cluster_block": "prod-east", "service": "web"}, {"context": "prod-a", "service": "web"})
    stage = spec.stages[0]
    block_target, context_target = stage.targets
    assert [target_name(stage, t) for t in stage.targets] == ["prod-east", "prod-a"]
    assert target_credentials(block_target, "/pipeline.kubeconfig") == (None, None, "prod-east")
    assert target_credentials(context_target, "/pipeline.kubeconfig") == ("/pipeline.kubeconfig", "prod-a", None)
    with pytest.raises(ValueError, match="needs a context or a cluster_block"):
        pipeline({"service": "web"})
    with pytest.raises(ValueError, match="in cluster block prod-east is already target"):
        pipeline({"cluster_block": "prod-east", "service": "web"},
                 {"cluster_block": "prod-east", "service": "web", "name": "again"})
