"""Chalice's swagger 2.0 document as API Gateway REST API calls, for a local AWS that cannot
import it.

moto 5.2.5's ImportRestApi / PutRestApi take OpenAPI 3 only ("Only OpenAPI 3.x.x are currently
supported", after creating an empty API), answer HTTP 500 without `info.description`, and even an
OpenAPI 3 import drops the authorizers and every method's security (moto/apigateway/models.py
put_rest_api: put_method(..., authorization_type=None)). So `chalice deploy` against moto never
had a REST API. This builds the same API through the individual calls that every API Gateway
serves (CreateRestApi, CreateAuthorizer, CreateResource, PutMethod, PutIntegration,
PutMethodResponse, PutIntegrationResponse): what AWS's importer makes of the same document.

`python -m infra.apigw_import <chalice args>` runs the Chalice CLI with its ImportRestApi and
PutRestApi calls falling back to this builder when the endpoint refuses the document; against
AWS (or an API Gateway that imports it) the import itself is used and this never runs.
"""

from __future__ import annotations

import sys
from typing import Any

from botocore.exceptions import ClientError

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SHORTFALL = ("Only OpenAPI 3", "InternalFailure", "InternalServerError")


def refused(exc: ClientError) -> bool:
    """The endpoint cannot import a swagger 2.0 document (moto), as opposed to a bad document."""
    err, status = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
    text = f"{err.get('Code', '')} {err.get('Message', '')}"
    return status.get("HTTPStatusCode") == 500 or any(s in text for s in SHORTFALL)


def _authorizers(api: Any, rest_api_id: str, doc: dict[str, Any]) -> dict[str, str]:
    """securityDefinitions -> authorizers; {definition name: authorizer id}."""
    ids = {}
    for name, sd in (doc.get("securityDefinitions") or {}).items():
        auth = sd.get("x-amazon-apigateway-authorizer")
        if not auth:
            continue
        kind = auth["type"].upper()
        if kind != "COGNITO_USER_POOLS":
            raise NotImplementedError(f"authorizer {name}: type {kind} (only Cognito is built)")
        ids[name] = api.create_authorizer(
            restApiId=rest_api_id, name=name, type=kind, providerARNs=auth["providerARNs"],
            identitySource=f"method.request.header.{sd.get('name', 'Authorization')}",
        )["id"]
    return ids


def _resource(api: Any, rest_api_id: str, by_path: dict[str, str], path: str) -> str:
    if path in by_path:
        return by_path[path]
    parent, _, part = path.rpartition("/")
    parent_id = _resource(api, rest_api_id, by_path, parent or "/")
    by_path[path] = api.create_resource(restApiId=rest_api_id, parentId=parent_id,
                                        pathPart=part)["id"]
    return by_path[path]


def _method(api: Any, rest_api_id: str, resource_id: str, verb: str, spec: dict[str, Any],
            path: str, authorizers: dict[str, str]) -> None:
    security = [name for req in spec.get("security") or [] for name in req]
    auth_id = next((authorizers[n] for n in security if n in authorizers), None)
    params = {f"method.request.path.{p['name']}": True
              for p in spec.get("parameters") or [] if p.get("in") == "path"}
    kwargs: dict[str, Any] = {"authorizationType": "COGNITO_USER_POOLS" if auth_id else "NONE"}
    if auth_id:
        kwargs["authorizerId"] = auth_id
    if params:
        kwargs["requestParameters"] = params
    api.put_method(restApiId=rest_api_id, resourceId=resource_id, httpMethod=verb, **kwargs)
    for code in spec.get("responses") or {}:
        api.put_method_response(restApiId=rest_api_id, resourceId=resource_id, httpMethod=verb,
                                statusCode=str(code))
    integ = spec.get("x-amazon-apigateway-integration")
    if not integ:
        raise ValueError(f"{verb} {path}: no x-amazon-apigateway-integration")
    args: dict[str, Any] = {"type": integ["type"].upper()}
    for src, dst in (("httpMethod", "integrationHttpMethod"), ("uri", "uri"),
                     ("passthroughBehavior", "passthroughBehavior"),
                     ("contentHandling", "contentHandling"),
                     ("requestTemplates", "requestTemplates")):
        if integ.get(src) is not None:
            args[dst] = integ[src]
    api.put_integration(restApiId=rest_api_id, resourceId=resource_id, httpMethod=verb, **args)
    for pattern, resp in (integ.get("responses") or {}).items():
        extra = {"selectionPattern": pattern} if pattern != "default" else {}
        if resp.get("responseParameters"):
            extra["responseParameters"] = resp["responseParameters"]
        api.put_integration_response(restApiId=rest_api_id, resourceId=resource_id,
                                     httpMethod=verb, statusCode=str(resp["statusCode"]),
                                     **extra)


def build(api: Any, doc: dict[str, Any], endpoint_type: str = "EDGE",
          rest_api_id: str | None = None) -> str:
    """The REST API of `doc`: a new one, or `rest_api_id` rebuilt (PutRestApi mode=overwrite)."""
    info = doc.get("info") or {}
    if rest_api_id is None:
        rest_api_id = api.create_rest_api(
            name=info.get("title", "api"), description=info.get("description", ""),
            binaryMediaTypes=doc.get("x-amazon-apigateway-binary-media-types") or [],
            endpointConfiguration={"types": [endpoint_type]})["id"]
    else:
        for a in api.get_authorizers(restApiId=rest_api_id)["items"]:
            api.delete_authorizer(restApiId=rest_api_id, authorizerId=a["id"])
        for r in api.get_resources(restApiId=rest_api_id, limit=500)["items"]:
            if r["path"].count("/") == 1 and r["path"] != "/":
                api.delete_resource(restApiId=rest_api_id, resourceId=r["id"])
    by_path = {r["path"]: r["id"]
               for r in api.get_resources(restApiId=rest_api_id, limit=500)["items"]}
    authorizers = _authorizers(api, rest_api_id, doc)
    for path, item in sorted((doc.get("paths") or {}).items()):
        resource_id = _resource(api, rest_api_id, by_path, path)
        for verb, spec in item.items():
            if verb.lower() in METHODS:
                _method(api, rest_api_id, resource_id, verb.upper(), spec, path, authorizers)
    return rest_api_id


def _drop_empty(api: Any, title: str) -> None:
    """moto creates the API before refusing the document: remove such empty leftovers."""
    for item in api.get_rest_apis(limit=500)["items"]:
        if item.get("name") == title:
            resources = api.get_resources(restApiId=item["id"])["items"]
            if all(r["path"] == "/" and not r.get("resourceMethods") for r in resources):
                api.delete_rest_api(restApiId=item["id"])


def patch_chalice() -> None:
    """Chalice's ImportRestApi / PutRestApi calls, with the builder as their fallback."""
    from chalice.awsclient import TypedAWSClient

    original_import = TypedAWSClient.import_rest_api
    original_update = TypedAWSClient.update_api_from_swagger

    def import_rest_api(self: Any, swagger_document: dict[str, Any], endpoint_type: str) -> str:
        try:
            return original_import(self, swagger_document, endpoint_type)
        except ClientError as exc:
            if not refused(exc):
                raise
            api = self._client("apigateway")
            _drop_empty(api, (swagger_document.get("info") or {}).get("title", ""))
            print("moto shortfall: ImportRestApi refuses Chalice's swagger 2.0; building the "
                  "REST API by its API calls (infra/apigw_import.py)", flush=True)
            return build(api, swagger_document, endpoint_type)

    def update_api_from_swagger(self: Any, rest_api_id: str,
                                swagger_document: dict[str, Any]) -> None:
        try:
            original_update(self, rest_api_id, swagger_document)
        except ClientError as exc:
            if not refused(exc):
                raise
            print("moto shortfall: PutRestApi refuses Chalice's swagger 2.0; rebuilding the "
                  "REST API by its API calls (infra/apigw_import.py)", flush=True)
            build(self._client("apigateway"), swagger_document, rest_api_id=rest_api_id)

    TypedAWSClient.import_rest_api = import_rest_api  # type: ignore[method-assign]
    TypedAWSClient.update_api_from_swagger = update_api_from_swagger  # type: ignore[method-assign]


def main() -> int:
    patch_chalice()
    from chalice.cli import main as chalice_main

    sys.argv[0] = "chalice"
    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
