"""The API's Cognito user pool through the APIs, for a local AWS (infra/cfn.py `users` is the one
definition; on AWS the infra stack creates it), and its boto3 check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra import cfn
from infra import spec as spec_mod

# CreateUserPool takes the CloudFormation properties but these (set by their own calls).
_NOT_CREATE_ARGS = ("EnabledMfas", "MfaConfiguration")


def create_user_pool(cognito: Any, sp: spec_mod.Spec) -> str:
    """The pool, its console client and one group per role; the pool's ARN."""
    defs = cfn.users(sp)
    props = {k: v for k, v in defs["UserPool"]["Properties"].items() if k not in _NOT_CREATE_ARGS}
    pool = cognito.create_user_pool(PoolName=props.pop("UserPoolName"), **props)["UserPool"]
    want = defs["UserPool"]["Properties"]
    cognito.set_user_pool_mfa_config(
        UserPoolId=pool["Id"], MfaConfiguration=want["MfaConfiguration"],
        SoftwareTokenMfaConfiguration={"Enabled": "SOFTWARE_TOKEN_MFA" in want["EnabledMfas"]})
    client = {k: v for k, v in defs["UserPoolClient"]["Properties"].items() if k != "UserPoolId"}
    cognito.create_user_pool_client(UserPoolId=pool["Id"], **client)
    for group in defs.values():
        if group["Type"] == "AWS::Cognito::UserPoolGroup":
            cognito.create_group(UserPoolId=pool["Id"], GroupName=group["Properties"]["GroupName"])
    return str(pool["Arn"])


def check_user_pool(cognito: Any, sp: spec_mod.Spec, pool_arn: str,
                    expect: Callable[[bool, str], None]) -> None:
    defs = cfn.users(sp)
    pool_id = pool_arn.rsplit("/", 1)[-1]
    try:
        pool = cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    except cognito.exceptions.ResourceNotFoundException:
        expect(False, f"Cognito user pool {pool_arn} exists")
        return
    want = defs["UserPool"]["Properties"]
    expect(pool.get("Arn") == pool_arn and pool.get("Name") == want["UserPoolName"],
           f"Cognito user pool {want['UserPoolName']} ({pool_arn})")
    expect(pool.get("MfaConfiguration") == "ON"
           and pool.get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly") is True,
           "user pool: MFA on, administrators create users")
    attrs = {a["Name"] for a in pool.get("SchemaAttributes", [])}
    expect({"custom:deployments", "custom:camera"} <= attrs,
           "user pool has custom:deployments and custom:camera (chalicelib/auth.py reads them)")
    groups = {g["GroupName"] for g in cognito.list_groups(UserPoolId=pool_id)["Groups"]}
    roles = {g["Properties"]["GroupName"] for g in defs.values()
             if g["Type"] == "AWS::Cognito::UserPoolGroup"}
    expect(groups == roles, f"user pool groups {sorted(groups)} == the app's roles")
    clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    name = defs["UserPoolClient"]["Properties"]["ClientName"]
    expect([c["ClientName"] for c in clients] == [name], f"user pool client {name}")
