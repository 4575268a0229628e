"""deploy/ checked as far as this machine can: the Prometheus rules pass
`promtool check rules` and their unit tests (`promtool test rules`); the
Grafana dashboard is valid JSON with the panels operators need and queries
promtool accepts; the
Kubernetes/KServe manifests parse as YAML with v2 health probes and scrape
annotations, and their embedded chilld config passes `chilld --check-config`;
the Dockerfile's build stage builds chilld from exactly what it copies; and
every chill_* and process_* metric the rules and the dashboard query is one
a live chilld really exports."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import lib

DEPLOY = os.path.join(lib.ROOT, "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "chilld-rules.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "chilld-dashboard.json")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC = r"(?<![\w:])((?:chill|process)_[a-z_]+)(?![\w:])"  # a metric name, not part of a recorded rule's name


def promtool():
    p = lib.venv_tool("promtool")
    if p is None:
        pytest.skip("promtool not installed (deploy/install-deps.sh installs it)")
    return p


def test_promtool_check_rules():
    r = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def test_promtool_rule_unit_tests():
    r = subprocess.run([promtool(), "test", "rules", "chilld-rules.test.yml"], capture_output=True,
                       timeout=60, cwd=os.path.dirname(RULES))
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return dash, [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_has_the_needed_panels():
    dash, exprs = dashboard_exprs()
    assert dash["uid"] and dash["title"]
    text = "\n".join(exprs)
    assert re.search(r"sum by \(mask\) \(rate\(chill_requests_total", text), "per-mask request rate"
    assert "histogram_quantile(0.99" in text and "chill_request_duration_seconds_bucket" in text, "latency quantiles"
    assert "rate(chill_attention_flops_total" in text, "FLOP/s"
    assert "chill_requests_queued" in text, "queue depth"
    assert 'code!~"2.."' in text, "errors"
    assert "chill_heap_used_bytes" in text and "process_open_fds" in text, "host memory and descriptors"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_are_valid_promql():
    """Each panel query, with Grafana's variables filled in, checked by
    promtool as the expression of a recording rule."""
    _, exprs = dashboard_exprs()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m")
         .replace("$instance", ".*").replace("$mask", ".*")} for i, e in enumerate(exprs)]}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard-rules.yml")
        with open(path, "w") as f:
            json.dump(rules, f)  # JSON is YAML
        r = subprocess.run([promtool(), "check", "rules", path], capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def manifests():
    yaml = pytest.importorskip("yaml")
    docs = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def test_kubernetes_manifests():
    docs = manifests()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServingRuntime", "InferenceService"} <= kinds, kinds
    for d in docs:
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]
            assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
            c = pod["spec"]["containers"][0]
        elif d["kind"] == "ServingRuntime":
            assert "v2" in d["spec"]["protocolVersions"]
            c = d["spec"]["containers"][0]
        else:
            continue
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["protocolVersion"] == "v2"


def test_embedded_config_passes_check_config():
    cms = [d for d in manifests() if d["kind"] == "ConfigMap" and "chilld.json" in d.get("data", {})]
    assert cms
    with tempfile.TemporaryDirectory() as tmp:
        for cm in cms:
            path = os.path.join(tmp, "chilld.json")
            with open(path, "w") as f:
                f.write(cm["data"]["chilld.json"])
            r = subprocess.run([lib.CHILLD, "--check-config", path], capture_output=True, timeout=30)
            assert r.returncode == 0, (r.stdout + r.stderr).decode()


def test_dockerfile_build_stage_builds_from_what_it_copies():
    """The build stage's COPY set alone (no tests/, bench/, ...) is enough
    for its `make all`: copied into an empty folder, it builds chilld."""
    headers = ("microhttpd.h", "jansson.h", "uv.h", "curl/curl.h")
    missing = [h for h in headers
               if subprocess.run(["cc", "-E", "-x", "c", "-o", "/dev/null", "-"], input=f"#include <{h}>\n".encode(),
                                 capture_output=True).returncode != 0]
    if missing:
        pytest.skip(f"no build dependencies here ({', '.join(missing)}; deploy/install-deps.sh installs them)")
    with open(os.path.join(DEPLOY, "container", "Dockerfile")) as f:
        lines = f.read().splitlines()
    sources = [ln.split()[1] for ln in lines if ln.startswith("COPY ") and "--from" not in ln]
    assert sources
    with tempfile.TemporaryDirectory() as tmp:
        for src in sources:
            path = os.path.join(lib.ROOT, src)
            assert os.path.exists(path), f"Dockerfile copies {src}, which is not in the repository"
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(tmp, src), ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        r = subprocess.run(["make", "-s", "-j2", f"BUILD={tmp}/out", "CHILL_CUDA=0", "all"], cwd=tmp,
                           capture_output=True, timeout=600, env=env)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()[-3000:]
        assert os.access(os.path.join(tmp, "out", "bin", "chilld"), os.X_OK)


def test_systemd_unit():
    unit = os.path.join(DEPLOY, "systemd", "chilld.service")
    with open(unit) as f:
        text = f.read()
    assert "ExecStart=/usr/local/bin/chilld --config /etc/chilld/chilld.json" in text
    assert "Restart=on-failure" in text
    sections = re.findall(r"^\[(\w+)\]$", text, re.M)
    assert sections == ["Unit", "Service", "Install"], sections
    for line in text.splitlines():
        assert not line or line.startswith(("#", "[")) or re.match(r"^[A-Za-z]+=", line), f"not a unit line: {line!r}"
    analyze = shutil.which("systemd-analyze")
    if analyze:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "chilld.service")
            with open(path, "w") as f:
                f.write(text.replace("/usr/local/bin/chilld", lib.CHILLD))
            r = subprocess.run([analyze, "verify", path], capture_output=True, timeout=60)
            assert r.returncode == 0 and path.encode() not in r.stderr, r.stderr.decode()


def queried_metrics():
    with open(RULES) as f:
        names = set(re.findall(METRIC, f.read()))
    names |= set(re.findall(METRIC, "\n".join(dashboard_exprs()[1])))
    return names


def test_queried_metrics_exist_in_a_live_scrape():
    with lib.Chilld() as server:
        rng = np.random.default_rng(2)
        q, k, v = lib.make_qkv(rng, 1, 2, 2, 8, 8, 16, "FP16")
        assert lib.infer(server, "causal", [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16")])[0] == 200
        text = server.metrics()
    exported = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            exported.add(name)
            if kind == "histogram":
                exported |= {name + s for s in HIST_SUFFIXES}
    missing = sorted(queried_metrics() - exported)
    assert not missing, f"rules or dashboard query metrics chilld does not export: {missing}"


if __name__ == "__main__":
    lib.run_tests(globals())
