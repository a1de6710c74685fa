"""Deployment tooling: IAM policies, CloudFormation, deploy-local. Not in the Lambda zip."""
