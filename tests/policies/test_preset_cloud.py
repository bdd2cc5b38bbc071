"""Decision table for the shipped `cloud` preset, loaded alone under `default: allow`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

PRESET = "cloud"
FORM = ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
AMZ_JSON = ("Content-Type", "application/x-amz-json-1.0")
EC2 = "https://ec2.us-east-1.amazonaws.com/"
DYNAMODB = "https://dynamodb.us-east-1.amazonaws.com/"
CLOUDWATCH = "https://monitoring.us-east-1.amazonaws.com/service/GraniteServiceVersion20100801"
S3 = "https://my-bucket.s3.us-east-1.amazonaws.com"
LAMBDA = "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions"
COMPUTE = "https://compute.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances"
GCS = "https://storage.googleapis.com/storage/v1/b"
ARM = "https://management.azure.com/subscriptions/s/resourceGroups/rg"
VM = f"{ARM}/providers/Microsoft.Compute/virtualMachines/vm1"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def case(
    case_id: str,
    method: str,
    url: str,
    action: str,
    rule_name: str | None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Any:
    rule_name = f"{PRESET}/{rule_name}" if rule_name else None
    return pytest.param(method, url, tuple(headers), body, action, rule_name, id=case_id)


def target(operation: str) -> list[tuple[str, str]]:
    return [AMZ_JSON, ("X-Amz-Target", operation)]


CASES = [
    # AWS query protocol (EC2).
    case("aws-ec2-describe-flows", "POST", EC2, "allow", "aws-api-read", [FORM],
         b"Action=DescribeInstances&Version=2016-11-15"),
    case("aws-ec2-get-describe-flows", "GET", EC2 + "?Action=DescribeRegions&Version=2016-11-15",
         "allow", "aws-api-read"),
    case("aws-ec2-run-instances-held", "POST", EC2, "hold", "aws-api-write", [FORM],
         b"Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1"),
    case("aws-ec2-terminate-held-critical", "POST", EC2, "hold", "aws-api-destroy", [FORM],
         b"Action=TerminateInstances&InstanceId.1=i-1"),
    case("aws-query-read-in-url-write-in-body-held", "POST", EC2 + "?Action=DescribeInstances",
         "hold", "aws-api-write", [FORM], b"Action=StopInstances&InstanceId.1=i-1"),
    case("aws-repeated-action-held", "POST", EC2, "hold", "aws-api-write", [FORM],
         b"Action=DescribeInstances&Action=CreateVpc"),
    case("aws-rds-delete-held", "POST", "https://rds.us-east-1.amazonaws.com/", "hold",
         "aws-api-destroy", [FORM], b"Action=DeleteDBInstance&DBInstanceIdentifier=prod"),
    case("aws-cloudformation-list-flows", "POST", "https://cloudformation.us-east-1.amazonaws.com/",
         "allow", "aws-api-read", [FORM], b"Action=ListStacks"),
    case("aws-sqs-queue-url-send-held", "POST",
         "https://sqs.us-east-1.amazonaws.com/123456789012/jobs", "hold", "aws-api-write", [FORM],
         b"Action=SendMessage&MessageBody=hi"),
    case("aws-sqs-queue-url-purge-held", "GET",
         "https://sqs.us-east-1.amazonaws.com/123456789012/jobs?Action=PurgeQueue", "hold",
         "aws-api-destroy"),
    # AWS JSON protocol.
    case("aws-dynamodb-query-flows", "POST", DYNAMODB, "allow", "aws-api-read",
         target("DynamoDB_20120810.Query"), b'{"TableName":"t"}'),
    case("aws-dynamodb-batch-get-flows", "POST", DYNAMODB, "allow", "aws-api-read",
         target("DynamoDB_20120810.BatchGetItem"), b"{}"),
    case("aws-dynamodb-put-item-held", "POST", DYNAMODB, "hold", "aws-api-write",
         target("DynamoDB_20120810.PutItem"), b"{}"),
    case("aws-dynamodb-delete-table-held", "POST", DYNAMODB, "hold", "aws-api-destroy",
         target("DynamoDB_20120810.DeleteTable"), b"{}"),
    case("aws-ecs-list-clusters-flows", "POST", "https://ecs.us-east-1.amazonaws.com/", "allow",
         "aws-api-read", target("AmazonEC2ContainerServiceV20141113.ListClusters"), b"{}"),
    case("aws-ecs-update-service-held", "POST", "https://ecs.us-east-1.amazonaws.com/", "hold",
         "aws-api-write", target("AmazonEC2ContainerServiceV20141113.UpdateService"), b"{}"),
    case("aws-logs-filter-flows", "POST", "https://logs.us-east-1.amazonaws.com/", "allow",
         "aws-api-read", target("Logs_20140328.FilterLogEvents"), b"{}"),
    # AWS Smithy RPC v2 CBOR.
    case("aws-cbor-get-metric-data-flows", "POST", CLOUDWATCH + "/operation/GetMetricData", "allow",
         "aws-api-read"),
    case("aws-cbor-put-alarm-held", "POST", CLOUDWATCH + "/operation/PutMetricAlarm", "hold",
         "aws-api-write"),
    case("aws-cbor-delete-alarms-held", "POST", CLOUDWATCH + "/operation/DeleteAlarms", "hold",
         "aws-api-destroy"),
    # S3.
    case("aws-s3-get-object-flows", "GET", S3 + "/reports/q1.csv", "allow", "aws-s3-read"),
    case("aws-s3-list-objects-flows", "GET", S3 + "/?list-type=2&prefix=reports/", "allow",
         "aws-s3-read"),
    case("aws-s3-put-object-not-held", "PUT", S3 + "/reports/q2.csv", "allow", None,
         [("Content-Type", "application/octet-stream")], b"\x00\xff binary"),
    case("aws-s3-multipart-part-not-held", "PUT", S3 + "/big.bin?partNumber=2&uploadId=abc",
         "allow", None, [], b"\x00"),
    case("aws-s3-put-bucket-policy-held", "PUT", S3 + "/?policy", "hold", "aws-s3-bucket-config",
         [], b'{"Statement":[]}'),
    case("aws-s3-delete-public-access-block-held", "DELETE", S3 + "/?publicAccessBlock=", "hold",
         "aws-s3-bucket-config"),
    case("aws-s3-object-acl-held", "PUT", S3 + "/secret.txt?acl", "hold", "aws-s3-bucket-config"),
    case("aws-s3-public-read-upload-held", "PUT", S3 + "/index.html", "hold", "aws-s3-public-acl",
         [("x-amz-acl", "public-read")], b"<html>"),
    case("aws-s3-create-bucket-held", "PUT", S3 + "/", "hold", "aws-s3-bucket-create-delete"),
    case("aws-s3-path-style-delete-bucket-held", "DELETE",
         "https://s3.us-west-2.amazonaws.com/my-bucket", "hold", "aws-s3-bucket-create-delete"),
    case("aws-s3-path-style-get-object-flows", "GET",
         "https://s3.us-west-2.amazonaws.com/my-bucket/a/b.txt", "allow", "aws-s3-read"),
    case("aws-s3-delete-object-held", "DELETE", S3 + "/reports/q1.csv", "hold",
         "aws-s3-object-delete"),
    case("aws-s3-bulk-delete-held", "POST", S3 + "/?delete", "hold", "aws-s3-object-delete",
         [("Content-Type", "application/xml")], b"<Delete/>"),
    # Lambda and other REST control planes.
    case("aws-lambda-get-function-flows", "GET", LAMBDA + "/my-fn", "allow",
         "aws-rest-control-plane-read"),
    case("aws-lambda-update-code-held", "PUT", LAMBDA + "/my-fn/code", "hold",
         "aws-rest-control-plane-write", [("Content-Type", "application/json")], b"{}"),
    case("aws-lambda-delete-held", "DELETE", LAMBDA + "/my-fn", "hold",
         "aws-rest-control-plane-delete"),
    case("aws-lambda-invoke-held", "POST", LAMBDA + "/my-fn/invocations", "hold",
         "aws-lambda-invoke", [], b"{}"),
    case("aws-route53-change-records-held", "POST",
         "https://route53.amazonaws.com/2013-04-01/hostedzone/Z1/rrset", "hold",
         "aws-rest-control-plane-write", [("Content-Type", "application/xml")], b"<x/>"),
    case("aws-bedrock-runtime-not-held", "POST",
         "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/converse",
         "allow", None, [("Content-Type", "application/json")], b'{"messages":[]}'),
    case("aws-execute-api-not-held", "POST",
         "https://abc123.execute-api.us-east-1.amazonaws.com/prod/orders", "allow", None,
         [("Content-Type", "application/json")], b'{"Action":"Buy"}'),
    # Google Cloud.
    case("gcp-compute-list-flows", "GET", COMPUTE, "allow", "gcp-control-plane-read"),
    case("gcp-compute-insert-held", "POST", COMPUTE, "hold", "gcp-control-plane-write",
         [("Content-Type", "application/json")], b"{}"),
    case("gcp-compute-delete-held", "DELETE", COMPUTE + "/vm-1", "hold",
         "gcp-control-plane-delete"),
    case("gcp-method-override-held", "POST", COMPUTE + "/vm-1", "hold", "http-method-override",
         [("X-HTTP-Method-Override", "DELETE")]),
    case("gcp-legacy-www-compute-insert-held", "POST",
         "https://www.googleapis.com/compute/v1/projects/p/global/networks", "hold",
         "gcp-control-plane-write", [], b"{}"),
    case("gcp-cloud-run-regional-deploy-held", "POST",
         "https://us-central1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services",
         "hold", "gcp-control-plane-write", [], b"{}"),
    case("gcp-get-iam-policy-flows", "POST",
         "https://cloudresourcemanager.googleapis.com/v3/projects/p:getIamPolicy", "allow",
         "gcp-iam-policy-read", [], b"{}"),
    case("gcp-set-iam-policy-held", "POST",
         "https://cloudresourcemanager.googleapis.com/v3/projects/p:setIamPolicy", "hold",
         "gcp-control-plane-write", [], b"{}"),
    case("gcp-sql-instance-delete-held", "DELETE",
         "https://sqladmin.googleapis.com/v1/projects/p/instances/db", "hold",
         "gcp-control-plane-delete"),
    case("gcp-batch-held", "POST", "https://compute.googleapis.com/batch/compute/v1", "hold",
         "gcp-batch-request", [("Content-Type", "multipart/mixed; boundary=x")], b"--x"),
    case("gcp-gcs-create-bucket-held", "POST", GCS + "?project=p", "hold",
         "gcp-storage-bucket-admin", [], b'{"name":"b"}'),
    case("gcp-gcs-bucket-iam-held", "PUT", GCS + "/b/iam", "hold", "gcp-storage-bucket-admin", [],
         b"{}"),
    case("gcp-gcs-xml-bucket-acl-held", "PUT", "https://b.storage.googleapis.com/?acl", "hold",
         "gcp-storage-bucket-admin", [], b"<x/>"),
    case("gcp-gcs-get-object-flows", "GET", GCS + "/b/o/report.csv?alt=media", "allow",
         "gcp-storage-read"),
    case("gcp-gcs-upload-not-held", "POST",
         "https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=media&name=x", "allow",
         None, [], b"data"),
    case("gcp-gcs-delete-object-held", "DELETE", GCS + "/b/o/report.csv", "hold",
         "gcp-storage-object-delete"),
    case("gcp-vertex-generate-not-held", "POST",
         "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/"
         "publishers/google/models/gemini-2.5-pro:generateContent", "allow", None, [], b"{}"),
    case("gcp-gemini-api-not-held", "POST",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
         "allow", None, [], b"{}"),
    # Azure Resource Manager.
    case("azure-get-vm-flows", "GET", VM + "?api-version=2024-07-01", "allow", "azure-arm-read"),
    case("azure-create-vm-held", "PUT", VM + "?api-version=2024-07-01", "hold", "azure-arm-write",
         [("Content-Type", "application/json")], b"{}"),
    case("azure-restart-vm-held", "POST", VM + "/restart?api-version=2024-07-01", "hold",
         "azure-arm-write"),
    case("azure-delete-resource-group-held", "DELETE", ARM + "?api-version=2021-04-01", "hold",
         "azure-arm-delete"),
    case("azure-resource-graph-flows", "POST",
         "https://management.azure.com/providers/Microsoft.ResourceGraph/resources"
         "?api-version=2022-10-01", "allow", "azure-resource-graph-query", [],
         b'{"query":"Resources | take 5"}'),
    # Not this preset's business.
    case("unrelated-host-not-held", "DELETE", "https://api.example.com/things/1", "allow", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "headers", "body", "action", "rule_name"), CASES)
def test_decide(
    policy: Policy,
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    action: str,
    rule_name: str | None,
) -> None:
    decision = policy.decide(build_request(method, url, headers, body))
    assert (decision.action, decision.rule) == (action, rule_name)


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "severity"),
    [
        pytest.param(
            "POST", EC2, (FORM,), b"Action=TerminateInstances", "critical", id="aws-terminate"
        ),
        pytest.param("POST", EC2, (FORM,), b"Action=CreateVpc", "high", id="aws-create"),
        pytest.param("DELETE", COMPUTE + "/vm-1", (), b"", "critical", id="gcp-delete"),
        pytest.param("DELETE", ARM, (), b"", "critical", id="azure-delete"),
    ],
)
def test_severity(
    policy: Policy,
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    severity: str,
) -> None:
    assert policy.decide(build_request(method, url, headers, body)).severity == severity


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
