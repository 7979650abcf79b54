"""Deployment files: the systemd unit, the container image, compose and the Kubernetes manifests.

Docker and Kubernetes cannot run here, so their files are checked for what they promise: that
every path they name exists, that they agree with each other (ports, users, mounts, secret
names), and that each example config passes replyclock's own validation in the layout its
deployment gives it. The systemd unit is checked by ``systemd-analyze`` where installed, and
the daemon is run under the same seccomp rules the unit's sandbox directives install.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fnmatch
import json
import mmap
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from monitor.config.loader import load_config
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "replyclock.service"
SYSTEMD_CONFIG = DEPLOY / "systemd" / "replyclock.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"
DOCKER_CONFIG = DEPLOY / "docker" / "replyclock.yaml"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
RULES_FILE = DEPLOY / "prometheus" / "replyclock.rules.yml"
DEFAULT_RULES = REPO / "rules" / "default.yaml"
GRAFANA = REPO / "grafana"

NOT_A_TEST_SERVER = "it is not one of the test servers, so this skips even under CI=true"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")

# The sandbox the unit must keep: directive -> its only value.
HARDENING = {
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "60",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "TimeoutStopSec": "15",
    "DynamicUser": "yes",
    "StateDirectory": "replyclock",
    "ConfigurationDirectory": "replyclock",
    "UMask": "0077",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
}
CREDENTIALS = [
    "imap-password:/etc/replyclock/credentials/imap-password",
    "slack-token:/etc/replyclock/credentials/slack-token",
]
KUBERNETES_KINDS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "Service": "v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}


# -- helpers: files ----------------------------------------------------------------------------


def unit_directives() -> dict[str, dict[str, list[str]]]:
    """The unit file as section -> directive -> values, in order (a directive may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive before the first section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service_directives() -> dict[str, list[str]]:
    return unit_directives()["Service"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def secret_files(directory: Path, names: Iterable[str]) -> Path:
    """Fake secret files named ``names`` in ``directory``."""
    for name in names:
        write(directory / name, f"not-a-real-{name}\n")
    return directory


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_values(keyword: str) -> list[str]:
    return [rest for name, rest in dockerfile_instructions() if name == keyword]


def image_uid() -> int:
    (user,) = dockerfile_values("USER")
    return int(user.split(":")[0])


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A compose service's bind mounts (short syntax) as container path -> host path."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def listen_port(config: Path) -> int:
    listen = yaml.safe_load(config.read_text())["metrics"]["listen"]
    return int(listen.rpartition(":")[2])


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return data


def kubernetes_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        objects.extend(d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d)
    return objects


def kubernetes_object(kind: str) -> dict[str, Any]:
    (found,) = [o for o in kubernetes_objects() if o["kind"] == kind]
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = kubernetes_object("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    result: dict[str, Any] = only
    return result


def mount_path(volume_name: str) -> str:
    (path,) = [m["mountPath"] for m in container()["volumeMounts"] if m["name"] == volume_name]
    result: str = path
    return result


def volume(name: str) -> dict[str, Any]:
    (found,) = [v for v in pod_spec()["volumes"] if v["name"] == name]
    result: dict[str, Any] = found
    return result


def required_variables(config: Path) -> set[str]:
    """Environment variables a config's values name without a default (comments aside)."""
    lines = [line for line in config.read_text().splitlines() if not line.lstrip().startswith("#")]
    return {m[1] for m in ENV_REFERENCE.finditer("\n".join(lines)) if not m[2]}


# -- helpers: processes ------------------------------------------------------------------------


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip(f"systemd-analyze is not installed; {NOT_A_TEST_SERVER}")
    assert found is not None
    return found


def unit_for_this_checkout(tmp_path: Path) -> Path:
    """The unit with ExecStart running this checkout's replyclock (the venv path is absent)."""
    (exec_start,) = service_directives()["ExecStart"]
    binary = exec_start.split()[0]
    text = UNIT.read_text().replace(
        f"ExecStart={binary} ", f"ExecStart={sys.executable} -m monitor "
    )
    return write(tmp_path / UNIT.name, text)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


# -- helpers: the unit's seccomp sandbox, rebuilt with libseccomp ------------------------------

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_MASKED_EQ = 7
PR_SET_NO_NEW_PRIVS = 38
SHM_EXEC = 0o100000
ADDRESS_FAMILIES = 64  # above AF_MAX of every Linux so far


def scmp_errno(code: int) -> int:
    return 0x00050000 | code


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class SeccompSandbox:
    """A seccomp filter built in the test process and loaded by the child just before exec.

    It mirrors what systemd installs for the unit: SystemCallFilter= as an allow list that
    kills on anything else (SystemCallArchitectures=native: libseccomp's default), the rules
    of MemoryDenyWriteExecute= (no W+X mmap, no mprotect/pkey_mprotect to PROT_EXEC, no
    SHM_EXEC), and RestrictAddressFamilies= (socket() of another family: EAFNOSUPPORT).
    """

    def __init__(self, library: str, service: dict[str, list[str]], analyze: str) -> None:
        self.lib = ctypes.CDLL(library, use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_void_p,
        ]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.ctx = self.lib.seccomp_init(SCMP_ACT_KILL_PROCESS)
        assert self.ctx, "seccomp_init failed"
        allowed: set[str] = set()
        for group in service["SystemCallFilter"]:
            allowed |= syscall_group(analyze, group)
        conditional = {"mmap", "mmap2", "mprotect", "pkey_mprotect", "shmat", "socket"}
        for name in sorted(allowed - conditional):
            self.rule(SCMP_ACT_ALLOW, name)
        wx = mmap.PROT_WRITE | mmap.PROT_EXEC
        for name in {"mmap", "mmap2"} & allowed:
            self.rule(scmp_errno(errno.EPERM), name, (2, SCMP_CMP_MASKED_EQ, wx, wx))
            for prot in (0, mmap.PROT_WRITE, mmap.PROT_EXEC):
                self.rule(SCMP_ACT_ALLOW, name, (2, SCMP_CMP_MASKED_EQ, wx, prot))
        exec_masks = {"mprotect": mmap.PROT_EXEC, "pkey_mprotect": mmap.PROT_EXEC}
        exec_masks["shmat"] = SHM_EXEC
        for name, mask in exec_masks.items():
            if name in allowed:
                self.rule(scmp_errno(errno.EPERM), name, (2, SCMP_CMP_MASKED_EQ, mask, mask))
                self.rule(SCMP_ACT_ALLOW, name, (2, SCMP_CMP_MASKED_EQ, mask, 0))
        if "socket" in allowed:
            (families,) = service["RestrictAddressFamilies"]
            permitted = {int(getattr(socket, family)) for family in families.split()}
            refused = scmp_errno(errno.EAFNOSUPPORT)
            for family in range(ADDRESS_FAMILIES):
                action = SCMP_ACT_ALLOW if family in permitted else refused
                self.rule(action, "socket", (0, SCMP_CMP_EQ, family, 0))
            self.rule(refused, "socket", (0, SCMP_CMP_GE, ADDRESS_FAMILIES, 0))

    def rule(self, action: int, name: str, *conditions: tuple[int, int, int, int]) -> None:
        number = self.lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not a system call of this architecture (mmap2 on x86-64, ...)
        array = (_ArgCmp * max(len(conditions), 1))(*(_ArgCmp(*c) for c in conditions))
        pointer = ctypes.addressof(array) if conditions else None
        result = self.lib.seccomp_rule_add_array(self.ctx, action, number, len(conditions), pointer)
        assert result == 0, f"seccomp_rule_add({name}) failed: {result}"

    def enter(self) -> None:
        """Run in the child between fork and exec: no new privileges, then the filter."""
        if self.libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        result = self.lib.seccomp_load(self.ctx)
        if result != 0:
            raise OSError(-result, "seccomp_load")


def syscall_group(analyze: str, group: str) -> set[str]:
    """The system calls of a systemd group such as @system-service, nested groups expanded."""
    output = subprocess.run(
        [analyze, "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in output.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        calls |= syscall_group(analyze, item) if item.startswith("@") else {item}
    return calls


def unit_sandbox() -> SeccompSandbox:
    analyze = systemd_analyze()
    if not sys.platform.startswith("linux"):
        pytest.skip(f"seccomp needs Linux; {NOT_A_TEST_SERVER}")
    library = ctypes.util.find_library("seccomp")
    if library is None:
        pytest.skip(f"libseccomp is not installed (Debian: libseccomp2); {NOT_A_TEST_SERVER}")
    assert library is not None
    return SeccompSandbox(library, service_directives(), analyze)


# -- systemd -----------------------------------------------------------------------------------


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` loads the unit without an error or warning about it."""
    analyze = systemd_analyze()
    unit = unit_for_this_checkout(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(unit)], check=False, capture_output=True, text=True, cwd=tmp_path
    )
    # verify exits 0 even when it ignores a misspelled directive: its warnings are the signal.
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert (result.returncode, complaints) == (0, []), result.stderr


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the unit's exposure 2.0 or lower ("OK" or better)."""
    analyze = systemd_analyze()
    unit = unit_for_this_checkout(tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    if "--offline" in result.stderr:
        pytest.skip(f"this systemd-analyze has no --offline (systemd < 250); {NOT_A_TEST_SERVER}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found[1]) <= 2.0, result.stdout


def test_unit_sets_every_hardening_directive_once() -> None:
    """Each sandbox directive appears exactly once with its value, so none is overridden."""
    service = service_directives()
    actual = {key: service.get(key) for key in HARDENING}
    assert actual == {key: [value] for key, value in HARDENING.items()}
    assert service["LoadCredential"] == CREDENTIALS
    (exec_start,) = service["ExecStart"]
    binary, *arguments = exec_start.split()
    assert binary.startswith("/")
    assert binary.endswith("/replyclock")
    assert arguments == ["run", "-c", "/etc/replyclock/replyclock.yaml"]
    assert unit_directives()["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_config_validates_with_the_units_credentials(tmp_path: Path) -> None:
    """The example config validates with its rules and the credentials LoadCredential= names."""
    config = write(tmp_path / "etc" / "replyclock.yaml", SYSTEMD_CONFIG.read_text())
    shutil.copy(DEFAULT_RULES, write(tmp_path / "etc" / "rules" / "default.yaml", ""))
    names = [entry.partition(":")[0] for entry in service_directives()["LoadCredential"]]
    credentials = secret_files(tmp_path / "credentials", names)
    loaded = load_config(config, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    state_directory = Path("/var/lib") / service_directives()["StateDirectory"][0]
    assert loaded.config.store.path.parent == state_directory
    assert loaded.config.metrics.listen == "127.0.0.1:9465"
    (source,) = loaded.config.sources
    assert source.password_file == credentials / "imap-password"  # type: ignore[union-attr]
    assert loaded.config.alerts is not None
    assert loaded.config.alerts.slack is not None
    assert loaded.config.alerts.slack.token_file == credentials / "slack-token"


def test_systemd_config_falls_back_to_the_credentials_source_files(tmp_path: Path) -> None:
    """Outside the service (no CREDENTIALS_DIRECTORY) the config names the files systemd loads."""
    config = write(tmp_path / "replyclock.yaml", SYSTEMD_CONFIG.read_text())
    shutil.copy(DEFAULT_RULES, write(tmp_path / "rules" / "default.yaml", ""))
    sources = [entry.partition(":")[2] for entry in service_directives()["LoadCredential"]]
    if any(Path(source).exists() for source in sources):
        pytest.skip("this machine has replyclock credentials installed in /etc/replyclock")
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    for source in sources:
        assert f"cannot read file {source}" in str(caught.value)


def test_rebuilt_sandbox_refuses_what_the_unit_forbids() -> None:
    """Under the rebuilt filter W+X memory, a netlink socket and chroot() fail as systemd's do."""
    sandbox = unit_sandbox()
    probes = {
        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)": (
            1,
            "PermissionError",
        ),
        "import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)": (1, "Errno 97"),
        "import os; os.chroot('/')": (-signal.SIGSYS, ""),
        "import socket; socket.socket(socket.AF_INET6).close()": (0, ""),
    }
    for code, (status, message) in probes.items():
        result = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            preexec_fn=sandbox.enter,
        )
        assert (result.returncode, message in result.stderr) == (status, True), code


def test_daemon_runs_under_the_units_seccomp_sandbox(tmp_path: Path) -> None:
    """Under the unit's syscall filter, W^X and address-family rules the daemon serves and stops."""
    sandbox = unit_sandbox()
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    config = tmp_path / "examples" / "demo.yaml"
    port = free_port()
    config.write_text(config.read_text() + f"\nmetrics:\n  listen: 127.0.0.1:{port}\n")
    log = tmp_path / "daemon.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=sandbox.enter,  # noqa: PLW1509 - the seccomp filter must be set in the child
        )

    def report() -> str:
        return f"exit status {process.poll()} (-31 is SIGSYS); log:\n{log.read_text()[-3000:]}"

    try:
        assert wait_for(lambda: http_get(port, "/readyz") == (200, "ready\n")), report()
        status, body = http_get(port, "/metrics")
        assert status == 200, report()
        assert 'replyclock_source_up{source="acme-support"} 1.0' in body
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, report()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- Docker ------------------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_image_running_replyclock() -> None:
    """The image is multi-stage on python:3.11-slim, runs `replyclock` as uid 10001, serves 9465."""
    assert "PYTHON_IMAGE=python:3.11-slim" in dockerfile_values("ARG")
    assert len(dockerfile_values("FROM")) >= 2
    assert all(value.startswith("${PYTHON_IMAGE}") for value in dockerfile_values("FROM"))
    assert image_uid() == 10001
    assert dockerfile_values("EXPOSE") == ["9465"]
    assert dockerfile_values("WORKDIR")[-1] == "/var/lib/replyclock"
    assert dockerfile_values("VOLUME") == ['["/var/lib/replyclock"]']
    assert dockerfile_values("STOPSIGNAL") == ["SIGTERM"]
    assert [json.loads(v) for v in dockerfile_values("ENTRYPOINT")] == [["replyclock"]]
    assert [json.loads(v) for v in dockerfile_values("CMD")] == [
        ["run", "-c", "/etc/replyclock/replyclock.yaml"]
    ]
    (healthcheck,) = dockerfile_values("HEALTHCHECK")
    assert "http://127.0.0.1:9465/healthz" in healthcheck
    assert listen_port(DOCKER_CONFIG) == 9465


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    """Every COPY from the build context names a repository path the dockerignore keeps."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for arguments in dockerfile_values("COPY"):
        if arguments.startswith("--from"):
            continue
        *sources, _ = arguments.split()
        copied.extend(sources)
    assert {"pyproject.toml", "README.md", "monitor"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), source
        parts = PurePosixPath(source).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        ignored = [p for p in patterns for x in prefixes if fnmatch.fnmatch(x, p)]
        assert ignored == [], f"{source} is excluded by {ignored}"


def test_docker_config_validates_with_compose_secrets_and_environment(tmp_path: Path) -> None:
    """The container config validates in the image's layout with compose's secrets and env."""
    service = compose()["services"]["replyclock"]
    secrets = secret_files(tmp_path / "secrets", service["secrets"])
    text = DOCKER_CONFIG.read_text()
    assert "/run/secrets/" in text
    config = write(
        tmp_path / "etc" / "replyclock.yaml", text.replace("/run/secrets/", f"{secrets}/")
    )
    shutil.copy(DEFAULT_RULES, write(tmp_path / "etc" / "rules" / "default.yaml", ""))
    assert required_variables(DOCKER_CONFIG) <= set(service["environment"])
    environ = dict.fromkeys(required_variables(DOCKER_CONFIG), "support@example.com")
    loaded = load_config(config, environ=environ)
    assert loaded.config.metrics.listen == "0.0.0.0:9465"
    assert loaded.config.store.path == Path("/var/lib/replyclock/replyclock.db")


# -- compose -----------------------------------------------------------------------------------


def test_compose_references_only_paths_that_exist() -> None:
    """The build context, Dockerfile and every bind mount exist; named volumes are declared."""
    data = compose()
    build = data["services"]["replyclock"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    for name, service in data["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
        for entry in service.get("volumes", []):
            source = entry.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in data["volumes"], f"{name}: volume {source} is not declared"
        for secret in service.get("secrets", []):
            assert secret in data["secrets"], f"{name}: secret {secret} is not declared"
    # Secret files are the operator's, so only their (git-ignored) directory is in the repo.
    for secret in data["secrets"].values():
        directory = (DEPLOY / secret["file"]).parent
        assert directory.is_dir(), directory
        assert "*" in (directory / ".gitignore").read_text().splitlines()


def test_compose_prometheus_scrapes_the_replyclock_service() -> None:
    """Compose's Prometheus loads a mounted config whose replyclock job scrapes replyclock:9465."""
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    mounts = bind_mounts(prometheus)
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    for rule_file in config["rule_files"]:
        assert mounts[str(PurePosixPath("/etc/prometheus") / rule_file)] == RULES_FILE
    targets = [
        target
        for job in config["scrape_configs"]
        if job["job_name"] == "replyclock"
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert "replyclock" in services
    assert targets == [f"replyclock:{listen_port(DOCKER_CONFIG)}"]
    assert bind_mounts(services["replyclock"])["/etc/replyclock/replyclock.yaml"] == DOCKER_CONFIG


@pytest.mark.prometheus
def test_promtool_accepts_the_compose_prometheus_config(promtool: str) -> None:
    """`promtool check config` accepts the compose Prometheus config and the rules it loads."""
    config = DEPLOY / "prometheus" / "prometheus.compose.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_mounts_provisioning_where_it_expects_and_shows_the_wall_screen() -> None:
    """Grafana gets the provisioning and dashboards at the paths they name, anonymous and dark."""
    services = compose()["services"]
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    for kind in ("dashboards", "datasources"):
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == GRAFANA / "provisioning" / kind
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "replyclock.yaml").read_text()
    )
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards_path] == GRAFANA / "dashboards"
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in services
    environment = grafana["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_USERS_DEFAULT_THEME"] == "dark"
    home = PurePosixPath(environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (mounts[str(home.parent)] / home.name).is_file()


# -- Kubernetes --------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml names every other YAML file in deploy/kubernetes, and no namespace."""
    data = kustomization()
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(data["resources"]) == sorted(files)
    assert "namespace" not in data


def test_kubernetes_manifests_have_the_expected_kinds_and_api_versions() -> None:
    """The manifests hold exactly one object of each expected kind, none pinned to a namespace."""
    objects = kubernetes_objects()
    assert sorted(o["kind"] for o in objects) == sorted(KUBERNETES_KINDS)
    assert {o["kind"]: o["apiVersion"] for o in objects} == KUBERNETES_KINDS
    assert [o["kind"] for o in objects if "namespace" in o["metadata"]] == []


def test_deployment_runs_one_replica_recreated_with_probes_on_9465() -> None:
    """One replica, Recreate, liveness /healthz, readiness /readyz, a generous startup probe."""
    deployment = kubernetes_object("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}

    def target(probe: str) -> tuple[str, int]:
        http = container()[probe]["httpGet"]
        return http["path"], ports.get(http["port"], http["port"])

    assert target("livenessProbe") == ("/healthz", 9465)
    assert target("readinessProbe") == ("/readyz", 9465)
    assert target("startupProbe") == ("/healthz", 9465)
    startup = container()["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert pod_spec()["terminationGracePeriodSeconds"] == 15
    assert container()["args"] == json.loads(dockerfile_values("CMD")[0])
    assert {"requests", "limits"} <= set(container()["resources"])


def test_deployment_runs_locked_down_as_the_images_user() -> None:
    """Non-root as the image's uid, read-only root, no capabilities, RuntimeDefault seccomp."""
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == image_uid()
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    own = container()["securityContext"]
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}
    assert mount_path("data") == "/var/lib/replyclock"
    claim = volume("data")["persistentVolumeClaim"]["claimName"]
    assert claim == kubernetes_object("PersistentVolumeClaim")["metadata"]["name"]


def test_persistent_volume_claim_is_read_write_once() -> None:
    """The store's volume is ReadWriteOnce: one node, for SQLite's single writer."""
    claim = kubernetes_object("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_service_and_service_monitor_scrape_the_metrics_port() -> None:
    """The Service exposes port "metrics" (9465) and the ServiceMonitor scrapes it every 30s."""
    service = kubernetes_object("Service")
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9465, "metrics")
    pod_labels = kubernetes_object("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # The scrape job is named after the Service: the rules' ReplyclockExporterDown expects it.
    assert service["metadata"]["name"] == "replyclock"
    monitor = kubernetes_object("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["interval"]) == ("metrics", "30s")


def test_prometheus_rule_groups_equal_the_rules_file() -> None:
    """The PrometheusRule carries exactly the groups of deploy/prometheus/replyclock.rules.yml."""
    rules = yaml.safe_load(RULES_FILE.read_text())
    assert kubernetes_object("PrometheusRule")["spec"]["groups"] == rules["groups"]


def test_configmap_rules_are_a_verbatim_copy_of_the_default_rules() -> None:
    """The ConfigMap's rules-default.yaml is rules/default.yaml, byte for byte."""
    data = kubernetes_object("ConfigMap")["data"]
    assert data["rules-default.yaml"] == DEFAULT_RULES.read_text()


def test_kubernetes_config_validates_as_mounted(tmp_path: Path) -> None:
    """The ConfigMap's files, laid out as the Deployment mounts them, validate with the Secret."""
    config_dir = PurePosixPath(mount_path("config"))
    root = tmp_path / "etc"
    configmap = kubernetes_object("ConfigMap")["data"]
    for item in volume("config")["configMap"]["items"]:
        write(root / item["path"], configmap[item["key"]])
    secrets_dir = mount_path("secrets")
    assert (
        volume("secrets")["secret"]["secretName"] == kubernetes_object("Secret")["metadata"]["name"]
    )
    secrets = secret_files(tmp_path / "secrets", kubernetes_object("Secret")["stringData"])
    config = root / PurePosixPath(container()["args"][2]).relative_to(config_dir)
    text = config.read_text()
    assert f"{secrets_dir}/" in text
    config.write_text(text.replace(f"{secrets_dir}/", f"{secrets}/"))
    loaded = load_config(config, environ={})
    assert loaded.config.metrics.listen == "0.0.0.0:9465"
    assert str(loaded.config.store.path.parent) == mount_path("data")


def test_kubectl_kustomize_renders_the_manifests() -> None:
    """`kubectl kustomize` renders the directory into the same objects, image name set."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(f"kubectl is not installed; {NOT_A_TEST_SERVER}")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(o["kind"] for o in rendered) == sorted(KUBERNETES_KINDS)
    (deployment,) = [o for o in rendered if o["kind"] == "Deployment"]
    (image,) = kustomization()["images"]
    (rendered_container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert rendered_container["image"] == f"{image['newName']}:{image['newTag']}"
