"""Deployment tooling: IAM policies, CloudFormation, deploy-local. Not packaged into the Lambda zip."""
