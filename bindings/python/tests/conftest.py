"""Shared fixtures: unique S3 buckets on the loopback server from scripts/test-services."""

from __future__ import annotations

import os
import urllib.request
import uuid

import pytest


@pytest.fixture
def s3_bucket() -> tuple[str, dict[str, str]]:
    """A fresh bucket: its ``s3://`` URL and the storage options to reach it."""
    endpoint = os.environ.get("TRAINSTORE_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.fail('TRAINSTORE_TEST_S3_ENDPOINT is not set: run eval "$(scripts/test-services)"')
    bucket = f"ts-py-{uuid.uuid4().hex[:16]}"
    request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", data=b"")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    options = {
        "aws_endpoint": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
    }
    return f"s3://{bucket}/ws", options
