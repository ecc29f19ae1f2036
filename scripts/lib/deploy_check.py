#!/usr/bin/env python3
"""Checks the operator kit in deploy/ with the real tools (run by
scripts/test-deploy, which installs them and builds the binaries):

1. manifests: every Kubernetes manifest passes kubernetes-validate
   (--strict) offline; the kustomization lists every one; every flag and
   RVC_ variable a container is given exists in its binary's --help; every
   *-file setting points at a key of a Secret mounted there; probes hit
   /readyz and /healthz on the internal port; the termination grace covers
   preStop plus the drain grace;
2. rules: `promtool check rules`, `promtool test rules` (the unit tests of
   every alert), `promtool check config`;
3. metric names: every rvc_ metric the rules and the dashboard use is
   reported by the binaries, or is in PLANNED below;
4. live: a matcher gateway, a matcher worker and a signaller start with
   their Deployments' own settings and Secret files (a private
   redis-server) and must become ready; a real Prometheus scrapes them
   while the load generator
   drives a little traffic; then every rule is healthy in Prometheus's own
   rule engine, every PromQL expression of the rules and the dashboard
   evaluates without error through /api/v1/query, every dashboard
   expression and recorded series returns data (planned metrics excepted
   while the binaries do not report them), and no alert is pending or
   firing on the healthy system.

Prints 'N passed, N failed' at the end; exits 1 on any failure.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
BIN = Path(os.environ.get("DEPLOY_CHECK_BIN_DIR", ROOT / "target" / "debug"))

# Metrics the rules and dashboard use before the binaries report them
# (none now). Once a binary reports one, it is checked like
# any other (it must then return data); remove it from here then.
PLANNED: set = set()
# Metrics that come from outside the binaries.
EXTERNAL = {"up", "kube_pod_status_ready"}
# Grafana's own variables, as Grafana would expand them for the test's
# short time range.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}

results = []


def check(name, ok, detail=""):
    results.append((name, ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok or not detail else f"\n     {detail}"))
    sys.stdout.flush()
    return ok


def docs_of(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def help_of(binary):
    out = subprocess.run([str(BIN / binary), "--help"], capture_output=True, text=True, check=True).stdout
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))
    envs = set(re.findall(r"\[env: (RVC_[A-Z0-9_]+)", out))
    return flags, envs


# ---------------------------------------------------------------- manifests
def manifests_by_kind():
    by_kind = {}
    for f in sorted(K8S.glob("*.yaml")):
        if f.name != "kustomization.yaml":
            for o in docs_of(f):
                by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    return by_kind


def pod_process(dep, by_kind, redis_url, tmp, ports):
    """The command line and environment a Deployment's container gets in
    Kubernetes (its args, ConfigMaps, env, Secret files), moved onto this
    machine: listen addresses on free loopback ports, the Secret files
    written under tmp, the Redis URL pointed at the test's redis-server."""
    c = dep["spec"]["template"]["spec"]["containers"][0]
    cmd = list(c.get("command") or []) + list(c.get("args") or [])
    env = {}
    for ef in c.get("envFrom", []):
        env.update(by_kind["ConfigMap"][ef["configMapRef"]["name"]]["data"])
    for e in c.get("env", []):
        src = e.get("valueFrom", {})
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "fieldRef" in src:
            env[e["name"]] = dep["metadata"]["name"] + "-test-pod"
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            env[e["name"]] = redis_url if ref["name"] == "rvc-redis" else by_kind["Secret"][ref["name"]]["stringData"][ref["key"]]
    for m in c.get("volumeMounts", []):
        vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == m["name"])
        data = by_kind["Secret"][vol["secret"]["secretName"]]["stringData"]
        keys = [i["path"] for i in vol["secret"].get("items", [])] or list(data)
        folder = tmp / "secrets" / dep["metadata"]["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for k in keys:
            (folder / k).write_text(data[k] + "\n")
        for k, v in env.items():
            if k.endswith("_FILE") and v.startswith(m["mountPath"].rstrip("/") + "/"):
                env[k] = str(folder / v.rsplit("/", 1)[1])
    env["RVC_INTERNAL_LISTEN"] = f"127.0.0.1:{ports['internal']}"
    if "--listen" in cmd:
        cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{ports['public']}"
    cmd[0] = str(BIN / cmd[0])
    return cmd, env


def check_manifests():
    files = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    check("kustomization lists every manifest", sorted(kust["resources"]) == sorted(p.name for p in files),
          f"listed {sorted(kust['resources'])}, present {[p.name for p in files]}")
    for f in files:
        r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(f)], capture_output=True, text=True)
        check(f"kubernetes-validate --strict {f.name}", r.returncode == 0, (r.stdout + r.stderr).strip())

    by_kind = manifests_by_kind()
    helps = {b: help_of(b) for b in ("matcher", "signaller")}
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    users_of = {}  # ConfigMap name -> binaries reading it
    signaller_drain = int(re.search(r"const DRAIN_GRACE: Duration = Duration::from_secs\((\d+)\)",
                                    (ROOT / "signaller" / "src" / "lib.rs").read_text()).group(1))

    for dep in by_kind.get("Deployment", {}).values():
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        for c in pod["containers"]:
            binary = (c.get("command") or c.get("args"))[0]
            flags, envs = helps[binary]
            args = (c.get("command") or [])[1:] + (c.get("args") or [])
            used = [a.split("=")[0] for a in args if a.startswith("--")]
            unknown = [a for a in used if a not in flags]
            check(f"{name}: every flag exists in `{binary} --help` ({', '.join(used)})", not unknown, f"unknown: {unknown}")
            env = {}
            for e in c.get("env", []):
                env[e["name"]] = e.get("value")
            unknown = [k for k in env if k.startswith("RVC_") and k not in envs]
            check(f"{name}: every RVC_ env variable exists in `{binary} --help`", not unknown, f"unknown: {unknown}")
            for ef in c.get("envFrom", []):
                cm = ef["configMapRef"]["name"]
                check(f"{name}: ConfigMap {cm} exists", cm in configmaps)
                users_of.setdefault(cm, set()).add(binary)
                env.update(configmaps[cm]["data"])
            # *-file settings name a key of a Secret mounted at that folder.
            mounts = {m["mountPath"].rstrip("/"): m["name"] for m in c.get("volumeMounts", [])}
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            for k, v in env.items():
                if not (k.startswith("RVC_") and k.endswith("_FILE")) or k not in envs:
                    continue
                folder, _, fname = v.rpartition("/")
                vol = vols.get(mounts.get(folder, ""), {})
                sec = vol.get("secret", {})
                keys = [i["path"] for i in sec.get("items", [])] or list(secrets.get(sec.get("secretName"), {}).get("stringData", {}))
                check(f"{name}: {k}={v} is a mounted Secret key", fname in keys, f"mounted there: {keys}")
            # Probes on the internal listener.
            internal = env.get("RVC_INTERNAL_LISTEN")
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            rp, lp = c.get("readinessProbe", {}).get("httpGet", {}), c.get("livenessProbe", {}).get("httpGet", {})
            check(f"{name}: readiness /readyz, liveness /healthz on the internal port",
                  internal is not None and rp.get("path") == "/readyz" and lp.get("path") == "/healthz"
                  and ports.get(rp.get("port")) == int(internal.rsplit(":", 1)[1]) == ports.get(lp.get("port")),
                  f"internal={internal} ports={ports} readiness={rp} liveness={lp}")
            # Drain: the grace period outlasts preStop + the drain.
            if binary == "signaller" or "gateway" in args:
                pre = c.get("lifecycle", {}).get("preStop", {})
                pause = int(pre.get("exec", {}).get("command", [None, 0])[1]) if "exec" in pre else pre.get("sleep", {}).get("seconds", 0)
                drain = signaller_drain if binary == "signaller" else int(env.get("RVC_DRAIN_GRACE_SECS", 10))
                tgps = pod.get("terminationGracePeriodSeconds", 30)
                check(f"{name}: preStop pause ({pause} s) before SIGTERM, grace {tgps} s > {pause} + drain {drain} + 10 s",
                      pause >= 5 and tgps >= pause + drain + 10)
                strategy = dep["spec"]["strategy"]["rollingUpdate"]
                check(f"{name}: rolling update keeps capacity (maxUnavailable 0)", strategy.get("maxUnavailable") == 0)
    for cm, bins in users_of.items():
        known = set().union(*(helps[b][1] for b in bins))
        keys = configmaps[cm]["data"].keys()
        unknown = [k for k in keys if k.startswith("RVC_") and k not in known]
        other = [k for k in keys if not k.startswith("RVC_") and k != "RUST_LOG"]
        check(f"ConfigMap {cm}: every key is a setting of {' or '.join(sorted(bins))}", not unknown and not other,
              f"unknown: {unknown + other}")
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        targets = {o["spec"].get("scaleTargetRef", {}).get("name") or o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
                   for o in by_kind.get(kind, {}).values()}
        check(f"{kind} for the gateways and signallers", {"matcher-gateway", "signaller"} <= targets, f"{targets}")


# --------------------------------------------------------------- rules etc.
def promtool(*args, cwd=PROM):
    r = subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def check_rules(tmp):
    check("promtool check rules rvc-rules.yml", *promtool("check", "rules", "rvc-rules.yml"))
    check("promtool test rules rvc-rules.test.yml", *promtool("test", "rules", "rvc-rules.test.yml"))
    # prometheus.yml names the rules where compose mounts them.
    conf = yaml.safe_load((PROM / "prometheus.yml").read_text())
    conf["rule_files"] = [str(PROM / "rvc-rules.yml")]
    (tmp / "compose-prometheus.yml").write_text(yaml.safe_dump(conf))
    check("promtool check config prometheus.yml (compose)", *promtool("check", "config", str(tmp / "compose-prometheus.yml")))
    # Debian's Prometheus is built without Kubernetes discovery: check the
    # rest of the file (relabelling) with the discovery swapped out.
    conf = yaml.safe_load((PROM / "kubernetes-scrape.yml").read_text())
    for job in conf["scrape_configs"]:
        check(f"kubernetes-scrape.yml: {job['job_name']} discovers pods", job.pop("kubernetes_sd_configs", [{}])[0].get("role") == "pod")
        job["static_configs"] = [{"targets": ["127.0.0.1:9100"]}]
    conf["rule_files"] = [str(PROM / "rvc-rules.yml")]
    (tmp / "k8s-prometheus.yml").write_text(yaml.safe_dump(conf))
    check("promtool check config kubernetes-scrape.yml (Kubernetes discovery swapped for static: Debian's build lacks it)",
          *promtool("check", "config", str(tmp / "k8s-prometheus.yml")))


def rule_exprs():
    rules = yaml.safe_load((PROM / "rvc-rules.yml").read_text())
    return [(r.get("record") or r.get("alert"), r["expr"]) for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs():
    dash = json.loads((GRAFANA / "dashboards" / "rvc-overview.json").read_text())
    out = []
    for p in dash["panels"]:
        for p in [p] + p.get("panels", []):
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
    return dash, out


def check_grafana():
    dash, exprs = dashboard_exprs()
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    check("dashboard: every panel queries the provisioned data source",
          all(p["datasource"]["uid"] == ds["uid"] and all(t["datasource"]["uid"] == ds["uid"] for t in p["targets"]) for p in panels))
    ids = [p["id"] for p in dash["panels"]]
    check("dashboard: panel ids unique, every panel has a query", len(ids) == len(set(ids)) and all(p["targets"] for p in panels))
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "rvc.yml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    g = compose["services"].get("grafana", {})
    mounts = {v.split(":")[1]: v.split(":")[0] for v in g.get("volumes", [])}
    check("compose: Grafana mounts the dashboards where provisioning looks",
          os.path.normpath(mounts.get(prov["options"]["path"], "")) == "deploy/grafana/dashboards", f"{mounts}")
    p = compose["services"].get("prometheus", {})
    pm = {v.split(":")[1]: v.split(":")[0] for v in p.get("volumes", [])}
    want_rules = yaml.safe_load((PROM / "prometheus.yml").read_text())["rule_files"][0]
    check("compose: Prometheus mounts its config and the rules where the config names them",
          os.path.normpath(pm.get(want_rules, "")) == "deploy/prometheus/rvc-rules.yml" and any(v.endswith("prometheus.yml") for v in pm.values()), f"{pm}")
    return exprs


METRIC = re.compile(r"(?<![:\w])(rvc_[a-z0-9_]+|up|kube_[a-z_]+)(?![:\w(])")


def base_metric(name):
    return re.sub(r"_(bucket|sum|count)$", "", name)


def check_metric_names(exprs):
    reported = set()
    for p in list((ROOT / "service" / "src").rglob("*.rs")) + list((ROOT / "matcher" / "src").rglob("*.rs")) + list((ROOT / "signaller" / "src").rglob("*.rs")):
        reported |= set(re.findall(r'"(rvc_[a-z0-9_]+)"', p.read_text()))
    used = {base_metric(m) for _, e in exprs for m in METRIC.findall(e)}
    unknown = sorted(used - reported - PLANNED - EXTERNAL)
    check(f"every metric used is reported by the binaries or planned ({len(used)} names)", not unknown, f"unknown: {unknown}")
    for m in sorted(PLANNED & reported):
        print(f"note: planned metric {m} is now reported: remove it from PLANNED in {Path(__file__).name}")
    return reported


# --------------------------------------------------------------------- live
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_for(what, fn, secs):
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except RuntimeError:  # gave up for good (a process exited)
            raise
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {secs} s (last: {last})")


def query(prom, expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        _, body = get(url)
    except urllib.error.HTTPError as e:
        body = e.read().decode()
    return json.loads(body)


def check_live(tmp, exprs, reported):
    procs = []

    def start(name, cmd, env=None):
        log = open(tmp / f"{name}.log", "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=tmp)
        procs.append((name, p))
        return p

    try:
        redis = free_port()
        start("redis", ["redis-server", "--port", str(redis), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        prom = free_port()
        wait_for("redis-server", lambda: socket.create_connection(("127.0.0.1", redis), 1).close() or True, 10)
        # Each role as its Deployment configures it (the manifests' own
        # settings and Secret files), one pod each.
        by_kind = manifests_by_kind()
        ports = {}
        for dep in ("matcher-gateway", "matcher-worker", "signaller"):
            ports[dep] = {"public": free_port(), "internal": free_port()}
            cmd, env = pod_process(by_kind["Deployment"][dep], by_kind, f"redis://127.0.0.1:{redis}", tmp, ports[dep])
            # Test-only: every simulated user comes from 127.0.0.1.
            env.update({"RVC_IP_RATE_LIMIT": "0", "RVC_MAX_SOCKETS_PER_IP": "0", "RUST_LOG": "warn"})
            start(dep, cmd, env)
        gw, gwi = ports["matcher-gateway"]["public"], ports["matcher-gateway"]["internal"]
        wi = ports["matcher-worker"]["internal"]
        sig, sigi = ports["signaller"]["public"], ports["signaller"]["internal"]
        secret = by_kind["Secret"]["rvc-secrets"]["stringData"]["ticket-secret"]
        common = {"RVC_TICKET_SECRET": secret}
        # Rules as shipped, evaluated every second instead of every 15.
        rules = yaml.safe_load((PROM / "rvc-rules.yml").read_text())
        for g in rules["groups"]:
            g["interval"] = "1s"
        (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "rules.yml")],
            "scrape_configs": [
                {"job_name": "rvc-matcher-gateway", "static_configs": [{"targets": [f"127.0.0.1:{gwi}"]}]},
                {"job_name": "rvc-matcher-worker", "static_configs": [{"targets": [f"127.0.0.1:{wi}"]}]},
                {"job_name": "rvc-signaller", "static_configs": [{"targets": [f"127.0.0.1:{sigi}"]}]},
            ]}))
        start("prometheus", ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom}"])
        def ready(dep, p):
            proc = dict(procs)[dep]
            if proc.poll() is not None:
                raise RuntimeError(f"{dep} exited with {proc.returncode}: "
                                   + (tmp / f"{dep}.log").read_text().strip()[-500:])
            return get(f"http://127.0.0.1:{p['internal']}/readyz")[0] == 200

        for dep, p in ports.items():
            try:
                wait_for(f"{dep} (started with its manifest's settings) ready", lambda: ready(dep, p), 20)
            except TimeoutError as e:
                raise RuntimeError(str(e)) from None
            check(f"{dep} starts with its manifest's settings and Secret files, and is ready", True)
        t0 = time.monotonic()
        wait_for("Prometheus scraping all three targets", lambda: len([
            t for t in json.loads(get(f"http://127.0.0.1:{prom}/api/v1/targets")[1])["data"]["activeTargets"]
            if t["health"] == "up"]) == 3, 30)
        print(f"     prometheus up and scraping after {time.monotonic() - t0:.1f} s")

        # A little traffic through the real clients of the load generator.
        bench = [BIN / "bench"]
        r = subprocess.run(bench + ["matcher", "--gateway", f"ws://127.0.0.1:{gw}/ws", "--users", "20", "--rounds", "3", "--max-secs", "20"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **common})
        check("traffic: 20 users matched 3 rounds each (bench matcher)", r.returncode == 0, r.stdout[-800:] + r.stderr[-800:])
        r = subprocess.run(bench + ["signaller", "--node", f"ws://127.0.0.1:{sig}/ws", "--node", f"ws://127.0.0.1:{sig}/ws",
                                    "--pairs", "4", "--rate", "100", "--secs", "2", "--warmup-secs", "0"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **common, "RVC_TICKET_SECRET": secret})
        check("traffic: signals relayed between 4 pairs (bench signaller)", r.returncode == 0, r.stdout[-800:] + r.stderr[-800:])

        def scraped(expr):
            res = query(prom, expr)["data"]["result"]
            return res and float(res[0]["value"][1]) > 0

        wait_for("the traffic in Prometheus", lambda: all(scraped(e) for e in (
            "sum(rvc_matches_total)", "sum(rvc_time_to_match_seconds_count)", "sum(rvc_relay_latency_seconds_count)",
            "sum(rvc_turn_credentials_issued_total)")), 30)
        time.sleep(2.5)  # two more rule evaluations over the traffic

        # Prometheus's own rule engine: every rule evaluated, none in error.
        groups = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/rules")[1])["data"]["groups"]
        bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
        n = sum(len(g["rules"]) for g in groups)
        check(f"Prometheus evaluates all {n} rules without error", not bad and n == len(rule_exprs()), f"{bad}")

        present = {base_metric(m) for m in json.loads(get(f"http://127.0.0.1:{prom}/api/v1/label/__name__/values")[1])["data"]}
        excused = PLANNED - present

        def names(expr):
            return {base_metric(m) for m in METRIC.findall(expr)}

        for name, expr in rule_exprs():
            res = query(prom, expr)
            check(f"rule {name}: evaluates", res.get("status") == "success", res.get("error", ""))
        recorded = [name for name, _ in rule_exprs() if ":" in name]
        for name, expr in rule_exprs():
            if ":" not in name:
                continue
            res = query(prom, name)
            waived = names(expr) & excused
            check(f"recorded {name}: has data" + (f" (waived: planned {sorted(waived)})" if waived else ""),
                  bool(waived) or (res.get("status") == "success" and res["data"]["result"]), json.dumps(res)[:300])
        for title, expr in exprs:
            for var, val in GRAFANA_VARS.items():
                expr = expr.replace(var, val)
            res = query(prom, expr)
            ok = res.get("status") == "success"
            check(f"dashboard '{title}': {expr[:70]} evaluates", ok, res.get("error", ""))
            waived = names(expr) & excused
            if waived:
                print(f"     (no data required: planned {sorted(waived)}, not reported yet)")
            else:
                check(f"dashboard '{title}': returns data", ok and bool(res["data"]["result"]), json.dumps(res)[:300])
        # The latency panels show what the traffic did, not NaN.
        for hist in ("rvc_time_to_match_seconds", "rvc_relay_latency_seconds"):
            res = query(prom, f"histogram_quantile(0.99, sum by (le) (rate({hist}_bucket[1m])))")["data"]["result"]
            v = float(res[0]["value"][1]) if res else float("nan")
            check(f"{hist} p99 from the traffic is a number ({v:.4f} s)", v == v and v > 0)
        alerts = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/alerts")[1])["data"]["alerts"]
        check("no alert pending or firing on the healthy system", not alerts,
              "; ".join(f"{a['labels']['alertname']} {a['state']}" for a in alerts))
    finally:
        for name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="deploy-check-"))
    try:
        print("==> manifests")
        check_manifests()
        print("==> Prometheus rules and configs")
        check_rules(tmp)
        print("==> Grafana dashboard and compose wiring")
        exprs = check_grafana()
        print("==> metric names")
        reported = check_metric_names(exprs + rule_exprs())
        print("==> live: real Prometheus scraping running services")
        check_live(tmp, exprs, reported)
    except Exception as e:  # a crash is a failure, with its cause
        check(f"deploy check ran to the end ({type(e).__name__}: {e})", False)
        for log in sorted(tmp.glob("*.log")):
            print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]))
    finally:
        if not os.environ.get("DEPLOY_CHECK_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    failed = sum(1 for _, ok in results if not ok)
    print(f"deploy check took {time.monotonic() - started:.1f} s")
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
