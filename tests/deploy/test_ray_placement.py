"""The RayCluster places agents the way the service asks for them (issue 16): agent slots only on the workers, at
least two workers, no work on the head. The service's side is `RayConfig.agent_resource`."""

from __future__ import annotations

import json
import shlex

from orchestrator.adapters.ray.agents import AGENT_RESOURCE, RayConfig
from orchestrator.config.settings import load_settings
from tests.deploy.manifests import Json, load_manifests, of_kind


def _cluster_spec() -> Json:
    (cluster,) = of_kind(load_manifests(), "RayCluster")
    spec: Json = cluster.body["spec"]
    return spec


def _resources(ray_start_params: Json) -> dict[str, float]:
    """What `ray start --resources=…` gets: KubeRay writes the value into a shell command line unchanged."""
    raw = ray_start_params.get("resources")
    if raw is None:
        return {}
    (word,) = shlex.split(str(raw))  # the shell's view: one word, quotes and escapes removed
    resources: dict[str, float] = json.loads(word)
    return resources


def test_the_service_asks_for_the_resource_the_workers_offer() -> None:
    assert RayConfig().agent_resource == AGENT_RESOURCE
    (workers,) = _cluster_spec()["workerGroupSpecs"]
    assert _resources(workers["rayStartParams"]).get(AGENT_RESOURCE, 0) >= 100


def test_the_orchestrator_is_set_to_the_resource_the_workers_offer() -> None:
    settings = next(m for m in of_kind(load_manifests(), "ConfigMap") if m.name == "orchestrator-settings")
    resource = settings.body["data"]["RAY_AGENT_RESOURCE"]
    assert resource == load_settings(ray_agent_resource=resource).ray_agent_resource == AGENT_RESOURCE
    (workers,) = _cluster_spec()["workerGroupSpecs"]
    assert resource in _resources(workers["rayStartParams"])


def test_the_head_offers_no_agent_slot_and_no_cpu() -> None:
    head = _cluster_spec()["headGroupSpec"]["rayStartParams"]
    assert AGENT_RESOURCE not in _resources(head)
    assert head["num-cpus"] == "0"


def test_two_workers_at_least_so_one_lost_is_never_a_whole_council() -> None:
    (workers,) = _cluster_spec()["workerGroupSpecs"]
    assert workers["minReplicas"] >= 2 and workers["replicas"] >= 2
