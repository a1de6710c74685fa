"""`chalice deploy` of a stage, with what Chalice cannot do itself, then a check of the result.

    python -m infra.deploy --stage local            # against moto server (started here)
    python -m infra.deploy --stage prod --no-infra  # against AWS, infra stack already deployed

1. infrastructure: on an endpoint (moto server, LocalStack) local/resources.py creates every
   resource through the APIs, and infra/users.py the Cognito user pool; on AWS deploy
   build/package/<stage>/infra.json first (docs/deploy.md) and give its UserPoolArn as
   LFR_COGNITO_USER_POOL_ARN;
2. publishes the inference layer (build/layer/lfr-inference-arm64.zip from `make layer`),
   through the stage's artifacts bucket when it is over the 50 MB Lambda takes inline;
3. runs `chalice deploy --stage <stage>` in a staged copy of the project (build/deploy/<stage>/)
   whose config names that layer version, the user pool, and whose policies name this account;
   on an endpoint through infra/apigw_import.py, which builds the REST API by its API calls
   where the endpoint cannot import Chalice's swagger (moto);
4. turns on ReportBatchItemFailures on every SQS event source mapping (Chalice cannot);
5. checks with boto3 what got deployed: functions (runtime, architecture, layer, environment,
   role policy), the layer, event source mappings (queue, batch size, response types), the
   CloudWatch alarms (metric, dimension, threshold, the operators' topic), the REST API (every
   route, its method, its Cognito authorizer and that authorizer's user pool, its integration
   with the API function, the function's permission) and the user pool (groups, client).
Everything it talks to honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), like the app.
"""

from __future__ import annotations

import argparse
import hashlib
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

from chalicelib import queue_timing
from infra import policies, users
from infra import spec as spec_mod

REPO = Path(__file__).resolve().parents[1]
LAYER_ZIP = REPO / "build/layer/lfr-inference-arm64.zip"
DEPLOY_CHALICE = REPO / "build/venv-deploy/bin/chalice"
POOL_ENV = "LFR_COGNITO_USER_POOL_ARN"


def layer_name(stage: str) -> str:
    return f"lfr-{stage}-inference"


def stub_layer() -> bytes:
    """A stand-in layer for tests: the deployment mechanics without 77 MB of wheels."""
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("models/README", "stand-in layer: run `make layer` for the real one\n")
    return buf.getvalue()


# PublishLayerVersion takes a zip inline up to 50 MB (AWS Lambda quotas: "Deployment package
# (.zip file archive) size: 50 MB (zipped, for direct upload)"); past that it must come from S3.
INLINE_LAYER_LIMIT = 50 * 1000 * 1000


def artifacts_bucket(stage: str, account: str) -> str:
    """The bucket deploy artifacts go through: the stage's own, never a bucket of frames or
    evidence (their lifecycle rules and policies are for biometric data)."""
    return f"lfr-{stage}-deploy-{account}"


def ensure_bucket(s3: Any, name: str, region: str) -> None:
    """The artifacts bucket, private, created if absent (as `chalice package`'s users or a CDK
    bootstrap would have one)."""
    try:
        s3.head_bucket(Bucket=name)
        return
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    from chalicelib.local.resources import create_private_bucket

    create_private_bucket(s3, name, region)


def publish_layer(session: boto3.session.Session, stage: str, content: bytes, runtime: str,
                  account: str) -> str:
    """A new version of the stage's inference layer: inline up to INLINE_LAYER_LIMIT, through
    the stage's artifacts bucket above it (the real layer zips to ~92 MB)."""
    code: dict[str, Any] = {"ZipFile": content}
    if len(content) > INLINE_LAYER_LIMIT:
        s3 = session.client("s3")
        bucket = artifacts_bucket(stage, account)
        ensure_bucket(s3, bucket, session.region_name or "us-east-1")
        key = f"layers/{layer_name(stage)}/{hashlib.sha256(content).hexdigest()}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=content)
        code = {"S3Bucket": bucket, "S3Key": key}
        print(f"layer zip ({len(content) / 1e6:.1f} MB) uploaded to s3://{bucket}/{key}")
    return session.client("lambda").publish_layer_version(
        LayerName=layer_name(stage), Description="numpy, onnxruntime, opencv, face models",
        Content=code, CompatibleRuntimes=[runtime], CompatibleArchitectures=["arm64"],
    )["LayerVersionArn"]


def staged_config(stage: str, layer_arn: str, pool_arn: str = "") -> dict[str, Any]:
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
    if pool_arn:  # app.py puts the Cognito authorizer on the routes (at deploy and at run time)
        env[POOL_ENV] = pool_arn
    return config


def stage_project(stage: str, layer_arn: str, account: str, requirements: bool,
                  pool_arn: str = "") -> Path:
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
    config = staged_config(stage, layer_arn, pool_arn)
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
          functions: list[str], runtime: str, pool_arn: str = "",
          deployed: dict[str, Any] | None = None) -> list[str]:
    """What got deployed, against what should have been. Returns the failures (empty: all good)."""
    lam, iam, sqs = session.client("lambda"), session.client("iam"), session.client("sqs")
    from chalicelib.vision.models import layer_model_env

    sp = spec_mod.build(spec_mod.stage_settings(stage))
    config = staged_config(stage, layer_arn, pool_arn)
    expected_env = {**config.get("environment_variables", {}),
                    **config["stages"][stage].get("environment_variables", {})}
    app = _app(stage, pool_arn)
    sources = app.event_sources
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
               and int(attrs["VisibilityTimeout"]) >= queue_timing.VISIBILITY_PER_TIMEOUT
               * _timeout(config, stage, queue_of, q.name),
               f"queue {q.name}: DLQ {q.dlq}, visibility {attrs['VisibilityTimeout']} s "
               ">= 6x the function's timeout")
    check_alarms(session, sp, expect)
    if deployed is not None:
        check_rest_api(session, stage, app, deployed, pool_arn, expect)
    if pool_arn:
        users.check_user_pool(session.client("cognito-idp"), sp, pool_arn, expect)
    return failures


def check_rest_api(session: boto3.session.Session, stage: str, app: Any,
                   deployed: dict[str, Any], pool_arn: str,
                   expect: Callable[[bool, str], None]) -> None:
    """Every route of app.py is a method of the deployed REST API, behind the Cognito authorizer
    of the stage's user pool where app.py says so, integrated with the API function."""
    gw, lam = session.client("apigateway"), session.client("lambda")
    rest = [r for r in deployed.get("resources", []) if r.get("resource_type") == "rest_api"]
    expect(len(rest) == 1, "REST API in chalice's record of the deploy")
    if not rest:
        return
    api_id, url = rest[0]["rest_api_id"], rest[0].get("rest_api_url", "")
    expect(gw.get_rest_api(restApiId=api_id)["name"] == app.app_name,
           f"REST API {api_id} ({app.app_name}) at {url}")
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    api_stage = config["stages"][stage].get("api_gateway_stage", "api")
    stages = {st["stageName"] for st in gw.get_stages(restApiId=api_id)["item"]}
    expect(api_stage in stages, f"REST API deployed to stage {api_stage!r} ({sorted(stages)})")
    authorizers = {a["id"]: a for a in gw.get_authorizers(restApiId=api_id)["items"]}
    want_auth = bool(pool_arn)
    expect((len(authorizers) == 1) == want_auth and all(
        a["type"] == "COGNITO_USER_POOLS" and a.get("providerARNs") == [pool_arn]
        for a in authorizers.values()),
        "authorizers: "
        f"{[(a['name'], a['type'], a.get('providerARNs')) for a in authorizers.values()]}")
    api_fn = function_name(stage, "api_handler")
    fn_arn = lam.get_function_configuration(FunctionName=api_fn)["FunctionArn"]
    by_path = {r["path"]: r for r in gw.get_resources(restApiId=api_id, limit=500)["items"]}
    expected_methods = set()
    for path, methods in sorted(app.routes.items()):
        for verb, entry in sorted(methods.items()):
            expected_methods.add((path, verb))
            res = by_path.get(path)
            if res is None or verb not in (res.get("resourceMethods") or {}):
                expect(False, f"route {verb} {path} is a method of the REST API")
                continue
            m = gw.get_method(restApiId=api_id, resourceId=res["id"], httpMethod=verb)
            integ = m.get("methodIntegration") or gw.get_integration(
                restApiId=api_id, resourceId=res["id"], httpMethod=verb)
            to_fn = integ.get("type") == "AWS_PROXY" and fn_arn in integ.get("uri", "")
            if entry.authorizer is not None:
                auth = authorizers.get(m.get("authorizerId", ""), {})
                ok = (m.get("authorizationType") == "COGNITO_USER_POOLS"
                      and auth.get("name") == entry.authorizer.name
                      and auth.get("providerARNs") == [pool_arn])
                who = f"Cognito {auth.get('name')} ({pool_arn.rsplit('/', 1)[-1]})"
            else:
                ok, who = m.get("authorizationType") == "NONE", "no authorizer"
            expect(ok and to_fn, f"route {verb} {path}: {who} -> {api_fn}")
    extra = {(p, v) for p, r in by_path.items() for v in (r.get("resourceMethods") or {})
             } - expected_methods
    expect(not extra, f"REST API has no method app.py lacks {sorted(extra) or ''}")
    statements = json.loads(lam.get_policy(FunctionName=fn_arn)["Policy"])["Statement"]
    expect(any(st.get("Principal", {}).get("Service") == "apigateway.amazonaws.com"
               and api_id in json.dumps(st.get("Condition", {})) for st in statements),
           f"API Gateway ({api_id}) may invoke {api_fn}")


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


def _app(stage: str, pool_arn: str = "") -> Any:
    """app.py as Chalice loads it for the stage (stage environment set: queue names follow it;
    with the user pool, its routes carry the Cognito authorizer)."""
    from chalicelib import runtime
    from chalicelib.local.pump import load_app

    env = {"LFR_STAGE": stage, POOL_ENV: pool_arn}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    runtime.settings.cache_clear()
    try:
        return load_app()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        runtime.settings.cache_clear()


def function_name(stage: str, fn: str) -> str:
    """Chalice names the REST API's function after the app, the others after the handler."""
    return f"lfr-{stage}" if fn == "api_handler" else f"lfr-{stage}-{fn}"


def deploy(stage: str, chalice: str, layer: bytes, requirements: bool,
           create_infra: bool) -> tuple[list[str], dict[str, Any]]:
    session = boto3.session.Session()
    pool_arn = os.environ.get(POOL_ENV, "")
    if create_infra:
        from chalicelib import clients
        from chalicelib.local import resources
        from chalicelib.settings import Settings

        clients.reset()
        resources.create_all(Settings.from_env({**os.environ, "LFR_STAGE": stage}))
        print(f"infrastructure for {stage} created through the APIs (local/resources.py)")
        if not pool_arn:
            sp = spec_mod.build(spec_mod.stage_settings(stage))
            pool_arn = users.create_user_pool(session.client("cognito-idp"), sp)
            print(f"Cognito user pool created through the APIs (infra/users.py): {pool_arn}")
    runtime = "python" + subprocess.run(
        [str(Path(chalice).with_name("python")), "-c",
         "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        check=True, capture_output=True, text=True).stdout.strip()
    lam = session.client("lambda")
    account = _account(session)
    layer_arn = publish_layer(session, stage, layer, runtime, account)
    print(f"layer published: {layer_arn}")
    project = stage_project(stage, layer_arn, account, requirements, pool_arn)
    functions = policies.app_functions(_app(stage, pool_arn))
    print(f"$ chalice deploy --stage {stage}   (in {project.relative_to(REPO)})", flush=True)
    env = {**os.environ, POOL_ENV: pool_arn}
    command = [chalice, "deploy", "--stage", stage]
    if _local_endpoint():
        # A local API Gateway may not import Chalice's swagger (moto): infra/apigw_import.py.
        command = [str(Path(chalice).absolute().with_name("python")), "-m", "infra.apigw_import",
                   *command[1:]]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(command, cwd=project, text=True, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout)
    deployed = json.loads((project / ".chalice" / "deployed" / f"{stage}.json").read_text())
    names = [function_name(stage, fn) for fn in functions]
    esms = report_batch_item_failures(lam, names)
    print(f"ReportBatchItemFailures set on {len(esms)} SQS event source mapping(s)")
    print("checking what got deployed:")
    failures = check(session, stage, layer_arn, functions, runtime, pool_arn, deployed)
    return failures, deployed


def _local_endpoint() -> bool:
    return any(k.startswith("AWS_ENDPOINT_URL") and v for k, v in os.environ.items())


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
        for k in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
            del os.environ[k]  # everything on this moto server, none elsewhere
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
