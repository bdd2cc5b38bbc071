"""Decision table for the shipped `cloud` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from policies.model import RequestView
from policies.request import build_request
from tests.policies.presetkit import Row, case, check_decision, load_preset

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


def target(operation: str) -> list[tuple[str, str]]:
    return [AMZ_JSON, ("X-Amz-Target", operation)]


CASES = [
    # AWS query protocol (EC2).
    case("POST", EC2, "allow", "cloud/aws-api-read", headers=[FORM],
         body=b"Action=DescribeInstances&Version=2016-11-15", id="aws-ec2-describe-flows"),
    case("GET", EC2 + "?Action=DescribeRegions&Version=2016-11-15", "allow", "cloud/aws-api-read",
         id="aws-ec2-get-describe-flows"),
    case("POST", EC2, "hold", "cloud/aws-api-write", headers=[FORM],
         body=b"Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1",
         id="aws-ec2-run-instances-held"),
    case("POST", EC2, "hold", "cloud/aws-api-destroy", headers=[FORM],
         body=b"Action=TerminateInstances&InstanceId.1=i-1", id="aws-ec2-terminate-held-critical"),
    case("POST", EC2 + "?Action=DescribeInstances", "hold", "cloud/aws-api-write", headers=[FORM],
         body=b"Action=StopInstances&InstanceId.1=i-1",
         id="aws-query-read-in-url-write-in-body-held"),
    case("POST", EC2, "hold", "cloud/aws-api-write", headers=[FORM],
         body=b"Action=DescribeInstances&Action=CreateVpc", id="aws-repeated-action-held"),
    case("POST", "https://rds.us-east-1.amazonaws.com/", "hold", "cloud/aws-api-destroy",
         headers=[FORM], body=b"Action=DeleteDBInstance&DBInstanceIdentifier=prod",
         id="aws-rds-delete-held"),
    case("POST", "https://cloudformation.us-east-1.amazonaws.com/", "allow", "cloud/aws-api-read",
         headers=[FORM], body=b"Action=ListStacks", id="aws-cloudformation-list-flows"),
    case("POST", "https://sqs.us-east-1.amazonaws.com/123456789012/jobs", "hold",
         "cloud/aws-api-write", headers=[FORM], body=b"Action=SendMessage&MessageBody=hi",
         id="aws-sqs-queue-url-send-held"),
    case("GET", "https://sqs.us-east-1.amazonaws.com/123456789012/jobs?Action=PurgeQueue", "hold",
         "cloud/aws-api-destroy", id="aws-sqs-queue-url-purge-held"),
    # AWS JSON protocol.
    case("POST", DYNAMODB, "allow", "cloud/aws-api-read", headers=target("DynamoDB_20120810.Query"),
         body=b'{"TableName":"t"}', id="aws-dynamodb-query-flows"),
    case("POST", DYNAMODB, "allow", "cloud/aws-api-read",
         headers=target("DynamoDB_20120810.BatchGetItem"), body=b"{}",
         id="aws-dynamodb-batch-get-flows"),
    case("POST", DYNAMODB, "hold", "cloud/aws-api-write",
         headers=target("DynamoDB_20120810.PutItem"), body=b"{}", id="aws-dynamodb-put-item-held"),
    case("POST", DYNAMODB, "hold", "cloud/aws-api-destroy",
         headers=target("DynamoDB_20120810.DeleteTable"), body=b"{}",
         id="aws-dynamodb-delete-table-held"),
    case("POST", "https://ecs.us-east-1.amazonaws.com/", "allow", "cloud/aws-api-read",
         headers=target("AmazonEC2ContainerServiceV20141113.ListClusters"), body=b"{}",
         id="aws-ecs-list-clusters-flows"),
    case("POST", "https://ecs.us-east-1.amazonaws.com/", "hold", "cloud/aws-api-write",
         headers=target("AmazonEC2ContainerServiceV20141113.UpdateService"), body=b"{}",
         id="aws-ecs-update-service-held"),
    case("POST", "https://logs.us-east-1.amazonaws.com/", "allow", "cloud/aws-api-read",
         headers=target("Logs_20140328.FilterLogEvents"), body=b"{}", id="aws-logs-filter-flows"),
    # AWS Smithy RPC v2 CBOR.
    case("POST", CLOUDWATCH + "/operation/GetMetricData", "allow", "cloud/aws-api-read",
         id="aws-cbor-get-metric-data-flows"),
    case("POST", CLOUDWATCH + "/operation/PutMetricAlarm", "hold", "cloud/aws-api-write",
         id="aws-cbor-put-alarm-held"),
    case("POST", CLOUDWATCH + "/operation/DeleteAlarms", "hold", "cloud/aws-api-destroy",
         id="aws-cbor-delete-alarms-held"),
    # S3.
    case("GET", S3 + "/reports/q1.csv", "allow", "cloud/aws-s3-read", id="aws-s3-get-object-flows"),
    case("GET", S3 + "/?list-type=2&prefix=reports/", "allow", "cloud/aws-s3-read",
         id="aws-s3-list-objects-flows"),
    case("PUT", S3 + "/reports/q2.csv", "allow", None,
         headers=[("Content-Type", "application/octet-stream")], body=b"\x00\xff binary",
         id="aws-s3-put-object-not-held"),
    case("PUT", S3 + "/big.bin?partNumber=2&uploadId=abc", "allow", None, body=b"\x00",
         id="aws-s3-multipart-part-not-held"),
    case("PUT", S3 + "/?policy", "hold", "cloud/aws-s3-bucket-config", body=b'{"Statement":[]}',
         id="aws-s3-put-bucket-policy-held"),
    case("DELETE", S3 + "/?publicAccessBlock=", "hold", "cloud/aws-s3-bucket-config",
         id="aws-s3-delete-public-access-block-held"),
    case("PUT", S3 + "/secret.txt?acl", "hold", "cloud/aws-s3-bucket-config",
         id="aws-s3-object-acl-held"),
    case("PUT", S3 + "/index.html", "hold", "cloud/aws-s3-public-acl",
         headers=[("x-amz-acl", "public-read")], body=b"<html>",
         id="aws-s3-public-read-upload-held"),
    case("PUT", S3 + "/", "hold", "cloud/aws-s3-bucket-create-delete",
         id="aws-s3-create-bucket-held"),
    case("DELETE", "https://s3.us-west-2.amazonaws.com/my-bucket", "hold",
         "cloud/aws-s3-bucket-create-delete", id="aws-s3-path-style-delete-bucket-held"),
    case("GET", "https://s3.us-west-2.amazonaws.com/my-bucket/a/b.txt", "allow",
         "cloud/aws-s3-read", id="aws-s3-path-style-get-object-flows"),
    case("DELETE", S3 + "/reports/q1.csv", "hold", "cloud/aws-s3-object-delete",
         id="aws-s3-delete-object-held"),
    case("POST", S3 + "/?delete", "hold", "cloud/aws-s3-object-delete",
         headers=[("Content-Type", "application/xml")], body=b"<Delete/>",
         id="aws-s3-bulk-delete-held"),
    # Lambda and other REST control planes.
    case("GET", LAMBDA + "/my-fn", "allow", "cloud/aws-rest-control-plane-read",
         id="aws-lambda-get-function-flows"),
    case("PUT", LAMBDA + "/my-fn/code", "hold", "cloud/aws-rest-control-plane-write",
         headers=[("Content-Type", "application/json")], body=b"{}",
         id="aws-lambda-update-code-held"),
    case("DELETE", LAMBDA + "/my-fn", "hold", "cloud/aws-rest-control-plane-delete",
         id="aws-lambda-delete-held"),
    case("POST", LAMBDA + "/my-fn/invocations", "hold", "cloud/aws-lambda-invoke", body=b"{}",
         id="aws-lambda-invoke-held"),
    case("POST", "https://route53.amazonaws.com/2013-04-01/hostedzone/Z1/rrset", "hold",
         "cloud/aws-rest-control-plane-write", headers=[("Content-Type", "application/xml")],
         body=b"<x/>", id="aws-route53-change-records-held"),
    case("POST",
         "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/converse",
         "allow", None, headers=[("Content-Type", "application/json")], body=b'{"messages":[]}',
         id="aws-bedrock-runtime-not-held"),
    case("POST", "https://abc123.execute-api.us-east-1.amazonaws.com/prod/orders", "allow", None,
         headers=[("Content-Type", "application/json")], body=b'{"Action":"Buy"}',
         id="aws-execute-api-not-held"),
    # Google Cloud.
    case("GET", COMPUTE, "allow", "cloud/gcp-control-plane-read", id="gcp-compute-list-flows"),
    case("POST", COMPUTE, "hold", "cloud/gcp-control-plane-write",
         headers=[("Content-Type", "application/json")], body=b"{}", id="gcp-compute-insert-held"),
    case("DELETE", COMPUTE + "/vm-1", "hold", "cloud/gcp-control-plane-delete",
         id="gcp-compute-delete-held"),
    case("POST", COMPUTE + "/vm-1", "hold", "cloud/http-method-override",
         headers=[("X-HTTP-Method-Override", "DELETE")], id="gcp-method-override-held"),
    case("POST", "https://www.googleapis.com/compute/v1/projects/p/global/networks", "hold",
         "cloud/gcp-control-plane-write", body=b"{}", id="gcp-legacy-www-compute-insert-held"),
    case("POST",
         "https://us-central1-run.googleapis.com/apis/serving.knative.dev/v1/namespaces/p/services",
         "hold", "cloud/gcp-control-plane-write", body=b"{}",
         id="gcp-cloud-run-regional-deploy-held"),
    case("POST", "https://cloudresourcemanager.googleapis.com/v3/projects/p:getIamPolicy", "allow",
         "cloud/gcp-iam-policy-read", body=b"{}", id="gcp-get-iam-policy-flows"),
    case("POST", "https://cloudresourcemanager.googleapis.com/v3/projects/p:setIamPolicy", "hold",
         "cloud/gcp-control-plane-write", body=b"{}", id="gcp-set-iam-policy-held"),
    case("DELETE", "https://sqladmin.googleapis.com/v1/projects/p/instances/db", "hold",
         "cloud/gcp-control-plane-delete", id="gcp-sql-instance-delete-held"),
    case("POST", "https://compute.googleapis.com/batch/compute/v1", "hold",
         "cloud/gcp-batch-request", headers=[("Content-Type", "multipart/mixed; boundary=x")],
         body=b"--x", id="gcp-batch-held"),
    case("POST", GCS + "?project=p", "hold", "cloud/gcp-storage-bucket-admin", body=b'{"name":"b"}',
         id="gcp-gcs-create-bucket-held"),
    case("PUT", GCS + "/b/iam", "hold", "cloud/gcp-storage-bucket-admin", body=b"{}",
         id="gcp-gcs-bucket-iam-held"),
    case("PUT", "https://b.storage.googleapis.com/?acl", "hold", "cloud/gcp-storage-bucket-admin",
         body=b"<x/>", id="gcp-gcs-xml-bucket-acl-held"),
    case("GET", GCS + "/b/o/report.csv?alt=media", "allow", "cloud/gcp-storage-read",
         id="gcp-gcs-get-object-flows"),
    case("POST", "https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=media&name=x",
         "allow", None, body=b"data", id="gcp-gcs-upload-not-held"),
    case("DELETE", GCS + "/b/o/report.csv", "hold", "cloud/gcp-storage-object-delete",
         id="gcp-gcs-delete-object-held"),
    case("POST",
         "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/"
         "publishers/google/models/gemini-2.5-pro:generateContent", "allow", None, body=b"{}",
         id="gcp-vertex-generate-not-held"),
    case("POST",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
         "allow", None, body=b"{}", id="gcp-gemini-api-not-held"),
    # Azure Resource Manager.
    case("GET", VM + "?api-version=2024-07-01", "allow", "cloud/azure-arm-read",
         id="azure-get-vm-flows"),
    case("PUT", VM + "?api-version=2024-07-01", "hold", "cloud/azure-arm-write",
         headers=[("Content-Type", "application/json")], body=b"{}", id="azure-create-vm-held"),
    case("POST", VM + "/restart?api-version=2024-07-01", "hold", "cloud/azure-arm-write",
         id="azure-restart-vm-held"),
    case("DELETE", ARM + "?api-version=2021-04-01", "hold", "cloud/azure-arm-delete",
         id="azure-delete-resource-group-held"),
    case("POST",
         "https://management.azure.com/providers/Microsoft.ResourceGraph/resources"
         "?api-version=2022-10-01", "allow", "cloud/azure-resource-graph-query",
         body=b'{"query":"Resources | take 5"}', id="azure-resource-graph-flows"),
    # Not this preset's business.
    case("DELETE", "https://api.example.com/things/1", "allow", None, id="unrelated-host-not-held"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_decide(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


@pytest.mark.parametrize(
    ("view", "severity"),
    [
        pytest.param(
            build_request("POST", EC2, (FORM,), b"Action=TerminateInstances"),
            "critical",
            id="aws-terminate",
        ),
        pytest.param(
            build_request("POST", EC2, (FORM,), b"Action=CreateVpc"), "high", id="aws-create"
        ),
        pytest.param(build_request("DELETE", COMPUTE + "/vm-1"), "critical", id="gcp-delete"),
        pytest.param(build_request("DELETE", ARM), "critical", id="azure-delete"),
    ],
)
def test_severity(policy: Policy, view: RequestView, severity: str) -> None:
    assert policy.decide(view).severity == severity


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
