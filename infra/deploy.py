"""`chalice deploy` of a stage, with what Chalice cannot do itself, then a check of the result.

    python -m infra.deploy --stage local            # against moto server (started here)
    python -m infra.deploy --stage prod --no-infra  # against AWS, infra stack already deployed

1. infrastructure: on an endpoint (moto server, LocalStack) local/resources.py creates every
   resource through the APIs; on AWS deploy build/package/<stage>/infra.json first (docs/deploy.md);
2. publishes the inference layer (build/layer/lfr-inference-arm64.zip from `make layer`);
3. runs `chalice deploy --stage <stage>` in a staged copy of the project (build/deploy/<stage>/)
   whose config names that layer version and whose policies name this account;
4. turns on ReportBatchItemFailures on every SQS event source mapping (Chalice cannot);
5. checks with boto3 what got deployed: functions (runtime, architecture, layer, environment,
   role policy), the layer, event source mappings (queue, batch size, response types), the
   CloudWatch alarms (metric, dimension, threshold, the operators' topic).
Everything it talks to honours AWS_ENDPOINT_URL, like the app.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3

from infra import policies
from infra import spec as spec_mod

REPO = Path(__file__).resolve().parents[1]
LAYER_ZIP = REPO / "build/layer/lfr-inference-arm64.zip"
DEPLOY_CHALICE = REPO / "build/venv-deploy/bin/chalice"
MOTO_API_SHORTFALL = "ImportRestApi operation"


def layer_name(stage: str) -> str:
    return f"lfr-{stage}-inference"


def stub_layer() -> bytes:
    """A stand-in layer for tests: the deployment mechanics without 77 MB of wheels."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("models/README", "stand-in layer: run `make layer` for the real one\n")
    return buf.getvalue()


def publish_layer(lam: Any, stage: str, content: bytes, runtime: str) -> str:
    return lam.publish_layer_version(
        LayerName=layer_name(stage), Description="numpy, onnxruntime, opencv, face models",
        Content={"ZipFile": content}, CompatibleRuntimes=[runtime],
        CompatibleArchitectures=["arm64"],
    )["LayerVersionArn"]


def staged_config(stage: str, layer_arn: str) -> dict[str, Any]:
    """The project's config with the inference layer attached to the stage, and its functions
    pointed at the layer's model files where the stage does not say already. The local stage
    sets no model paths, so that `chalice local --stage local` (which applies the stage's
    api_handler environment) reads the wheels' models; its deployed functions read the layer's."""
    from chalicelib.vision.models import layer_model_env

    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    entry = config["stages"][stage]
    entry["layers"] = [layer_arn]
    env = entry.setdefault("environment_variables", {})
    for key, value in layer_model_env().items():
        env.setdefault(key, value)
    return config


def stage_project(stage: str, layer_arn: str, account: str, requirements: bool) -> Path:
    """A copy of the project that `chalice deploy` runs in: config and policies for this account."""
    dest = REPO / "build" / "deploy" / stage
    keep = dest / ".chalice" / "deployed"
    saved = None
    if keep.exists():  # chalice's record of what it deployed: keeps redeploys incremental
        saved = REPO / "build" / "deploy" / f".{stage}-deployed"
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(keep, saved)
    shutil.rmtree(dest, ignore_errors=True)
    (dest / ".chalice").mkdir(parents=True)
    shutil.copy2(REPO / "app.py", dest / "app.py")
    shutil.copytree(REPO / "chalicelib", dest / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    reqs = (REPO / "requirements.txt").read_text() if requirements else ""
    (dest / "requirements.txt").write_text(reqs)
    config = staged_config(stage, layer_arn)
    (dest / ".chalice" / "config.json").write_text(json.dumps(config, indent=2))
    for fn, entry in config["stages"][stage].get("lambda_functions", {}).items():
        if "iam_policy_file" in entry:
            doc = policies.static_policy(fn, stage, account)
            (dest / ".chalice" / entry["iam_policy_file"]).write_text(json.dumps(doc, indent=2))
    if saved:
        shutil.copytree(saved, keep)
        shutil.rmtree(saved)
    return dest


def mappings_of(lam: Any, function_name: str) -> list[dict[str, Any]]:
    """The function's event source mappings. Listed unfiltered and matched here: moto filters
    FunctionName literally against what the mapping was created with (Chalice passes the ARN)."""
    out = []
    for page in lam.get_paginator("list_event_source_mappings").paginate():
        out += [e for e in page["EventSourceMappings"]
                if e["FunctionArn"].rsplit(":", 1)[-1] == function_name]
    return out


def report_batch_item_failures(lam: Any, function_names: list[str]) -> list[str]:
    done = []
    for fn in function_names:
        for esm in mappings_of(lam, fn):
            if ":sqs:" not in esm["EventSourceArn"]:
                continue
            if "ReportBatchItemFailures" not in (esm.get("FunctionResponseTypes") or []):
                lam.update_event_source_mapping(
                    UUID=esm["UUID"], FunctionResponseTypes=["ReportBatchItemFailures"])
            done.append(esm["UUID"])
    return done


def check(session: boto3.session.Session, stage: str, layer_arn: str,
          functions: list[str], runtime: str) -> list[str]:
    """What got deployed, against what should have been. Returns the failures (empty: all good)."""
    lam, iam, sqs = session.client("lambda"), session.client("iam"), session.client("sqs")
    from chalicelib.vision.models import layer_model_env

    sp = spec_mod.build(spec_mod.stage_settings(stage))
    config = staged_config(stage, layer_arn)
    expected_env = {**config.get("environment_variables", {}),
                    **config["stages"][stage].get("environment_variables", {})}
    sources = _app(stage).event_sources
    queue_of = {src.name: (src.queue, src.batch_size) for src in sources if hasattr(src, "queue")}
    scheduled = {src.name: src.schedule_expression for src in sources
                 if hasattr(src, "schedule_expression")}
    failures: list[str] = []

    def expect(ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            failures.append(what)

    # moto: GetLayerVersionByArn answers HTTP 500; GetLayerVersion works.
    version = lam.get_layer_version(LayerName=layer_arn.rsplit(":", 1)[0],
                                    VersionNumber=int(layer_arn.rsplit(":", 1)[1]))
    expect(version["LayerVersionArn"] == layer_arn and version["Content"]["CodeSize"] > 0,
           f"layer {layer_arn} published ({version['Content']['CodeSize']} bytes)")
    for fn in functions:
        name = function_name(stage, fn)
        try:
            conf = lam.get_function_configuration(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            expect(False, f"function {name} exists")
            continue
        expect(True, f"function {name} exists")
        expect(conf["Runtime"] == runtime, f"{name} runtime {conf['Runtime']} == {runtime}")
        expect(conf.get("Architectures") == ["arm64"],
               f"{name} architecture {conf.get('Architectures')}")
        expect([layer["Arn"] for layer in conf.get("Layers", [])] == [layer_arn],
               f"{name} uses the inference layer")
        env = conf.get("Environment", {}).get("Variables", {})
        fn_env = config["stages"][stage].get("lambda_functions", {}).get(fn, {}).get(
            "environment_variables", {})
        missing = {k: v for k, v in {**expected_env, **fn_env}.items() if env.get(k) != v}
        expect(not missing, f"{name} environment has {sorted({**expected_env, **fn_env})}"
               + (f" (wrong or missing: {sorted(missing)})" if missing else ""))
        layer_env = layer_model_env()
        expect(all(env.get(k) == v for k, v in layer_env.items()),
               f"{name} reads the models from the layer ({layer_env['LFR_DETECTOR_PATH']}, ...)")
        role = conf["Role"].rsplit("/", 1)[1]
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        docs = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]
                for n in names]
        want = policies.static_policy(fn, stage, _account(session))
        expect(any(d == want for d in docs),
               f"{name} role {role} carries policy-{stage}-{fn}.json (no wildcard actions)")
        if fn in scheduled:
            events = session.client("events")
            rules = events.list_rule_names_by_target(TargetArn=conf["FunctionArn"])["RuleNames"]
            expr = scheduled[fn]
            when = expr.to_string() if hasattr(expr, "to_string") else str(expr)
            expect(len(rules) == 1, f"{name} scheduled ({when}) by rule {rules}")
        if fn in queue_of:
            queue, size = queue_of[fn]
            qarn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=queue)[
                "QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            esms = mappings_of(lam, name)
            ok = [e for e in esms if e["EventSourceArn"] == qarn]
            expect(len(ok) == 1, f"{name} <- SQS {queue}")
            if ok:
                e = ok[0]
                expect(e["BatchSize"] == size, f"{name} mapping batch size {e['BatchSize']}")
                expect(e.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
                       f"{name} mapping reports batch item failures")
                expect(e.get("State") in ("Enabled", "Enabling", "Creating"),
                       f"{name} mapping state {e.get('State')}")
    for q in sp.queues:
        url = sqs.get_queue_url(QueueName=q.name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
        expect(redrive.get("deadLetterTargetArn", "").endswith(":" + q.dlq)
               and int(attrs["VisibilityTimeout"]) >= _timeout(config, stage, queue_of, q.name),
               f"queue {q.name}: DLQ {q.dlq}, visibility {attrs['VisibilityTimeout']} s "
               ">= the function's timeout")
    check_alarms(session, sp, expect)
    return failures


def check_alarms(session: boto3.session.Session, sp: spec_mod.Spec,
                 expect: Callable[[bool, str], None]) -> None:
    """Each alarm of chalicelib/monitoring.py exists on the right metric and notifies the
    operators' topic; a function's alarm names the function that got deployed."""
    sns, cw = session.client("sns"), session.client("cloudwatch")
    topics = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate()
              for t in page["Topics"] if t["TopicArn"].endswith(":" + sp.ops_topic)]
    expect(len(topics) == 1, f"operators' topic {sp.ops_topic}")
    got = {m["AlarmName"]: m for m in cw.describe_alarms(
        AlarmNames=[a.name for a in sp.alarms])["MetricAlarms"]}
    for a in sp.alarms:
        m = got.get(a.name, {})
        dims = [{"Name": a.dimension[0], "Value": a.dimension[1]}]
        ok = (m.get("Namespace"), m.get("MetricName"), m.get("Dimensions"), m.get("Statistic"),
              m.get("Threshold"), m.get("ComparisonOperator")) == \
            (a.namespace, a.metric, dims, a.statistic, a.threshold, a.comparison)
        ok = ok and bool(topics) and topics[0] in m.get("AlarmActions", [])
        if a.function:
            ok = ok and a.dimension[1] == function_name(sp.settings.stage, a.function)
        expect(ok, f"alarm {a.name}: {a.metric} of {a.dimension[1]} > {a.threshold:g} "
               f"-> {sp.ops_topic}")


def _timeout(config: dict[str, Any], stage: str, queue_of: dict[str, Any], queue: str) -> int:
    for fn, (q, _) in queue_of.items():
        if q == queue:
            entry = config["stages"][stage].get("lambda_functions", {}).get(fn, {})
            return int(entry.get("lambda_timeout", config.get("lambda_timeout", 60)))
    return 0


def _account(session: boto3.session.Session) -> str:
    return session.client("sts").get_caller_identity()["Account"]


def _app(stage: str) -> Any:
    """app.py as Chalice loads it for the stage (stage environment set: queue names follow it)."""
    from chalicelib import runtime
    from chalicelib.local.pump import load_app

    saved = os.environ.get("LFR_STAGE")
    os.environ["LFR_STAGE"] = stage
    runtime.settings.cache_clear()
    try:
        return load_app()
    finally:
        if saved is None:
            os.environ.pop("LFR_STAGE", None)
        else:
            os.environ["LFR_STAGE"] = saved
        runtime.settings.cache_clear()


def function_name(stage: str, fn: str) -> str:
    """Chalice names the REST API's function after the app, the others after the handler."""
    return f"lfr-{stage}" if fn == "api_handler" else f"lfr-{stage}-{fn}"


def deploy(stage: str, chalice: str, layer: bytes, requirements: bool,
           create_infra: bool) -> tuple[list[str], dict[str, Any]]:
    session = boto3.session.Session()
    if create_infra:
        from chalicelib import clients
        from chalicelib.local import resources
        from chalicelib.settings import Settings

        clients.reset()
        resources.create_all(Settings.from_env({**os.environ, "LFR_STAGE": stage}))
        print(f"infrastructure for {stage} created through the APIs (local/resources.py)")
    runtime = "python" + subprocess.run(
        [str(Path(chalice).with_name("python")), "-c",
         "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        check=True, capture_output=True, text=True).stdout.strip()
    lam = session.client("lambda")
    layer_arn = publish_layer(lam, stage, layer, runtime)
    print(f"layer published: {layer_arn}")
    project = stage_project(stage, layer_arn, _account(session), requirements)
    functions = policies.app_functions(_app(stage))
    print(f"$ chalice deploy --stage {stage}   (in {project.relative_to(REPO)})", flush=True)
    proc = subprocess.run([chalice, "deploy", "--stage", stage], cwd=project, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout.rstrip())
    deployed: dict[str, Any] = {}
    if proc.returncode != 0:
        if not (os.environ.get("AWS_ENDPOINT_URL") and MOTO_API_SHORTFALL in proc.stdout):
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout)
        # moto 5.2.5's ImportRestApi reads info.description, which Chalice's swagger lacks
        # (moto/apigateway/models.py import_rest_api: KeyError 'description' -> HTTP 500).
        # Chalice deploys the REST API last, so everything else is in place: go on, check it.
        print("moto shortfall: ImportRestApi fails on Chalice's swagger (no info.description); "
              "the REST API is not deployed, every function, role, layer and mapping is")
    else:
        deployed = json.loads((project / ".chalice" / "deployed" / f"{stage}.json").read_text())
    names = [function_name(stage, fn) for fn in functions]
    esms = report_batch_item_failures(lam, names)
    print(f"ReportBatchItemFailures set on {len(esms)} SQS event source mapping(s)")
    print("checking what got deployed:")
    failures = check(session, stage, layer_arn, functions, runtime)
    return failures, deployed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stage", default="local")
    p.add_argument("--chalice", default=str(DEPLOY_CHALICE))
    p.add_argument("--layer", type=Path, default=LAYER_ZIP)
    p.add_argument("--stub-layer", action="store_true", help="publish a stand-in layer (tests)")
    p.add_argument("--no-requirements", action="store_true",
                   help="deploy without requirements.txt (no PyPI access: tests)")
    p.add_argument("--no-infra", action="store_true",
                   help="the infrastructure exists already (AWS: the infra.json stack)")
    p.add_argument("--moto", action="store_true",
                   help="start a moto server for this run (unless AWS_ENDPOINT_URL is set)")
    args = p.parse_args(argv)

    server = None
    if args.moto and not os.environ.get("AWS_ENDPOINT_URL"):
        from chalicelib.local import moto_server

        server = moto_server.start()
        os.environ.update(server.env())
        print(f"moto server on {server.endpoint}")
    try:
        if args.stub_layer:
            layer = stub_layer()
        elif args.layer.exists():
            layer = args.layer.read_bytes()
        else:
            print(f"{args.layer} not found: run `make layer` (or pass --stub-layer)",
                  file=sys.stderr)
            return 2
        failures, _ = deploy(args.stage, args.chalice, layer, not args.no_requirements,
                             not args.no_infra)
    finally:
        if server:
            from chalicelib.local import moto_server

            moto_server.stop(server)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("deploy-local: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
