"""Shared fixtures: unique S3 buckets and MariaDB databases on the loopback servers from
scripts/test-services."""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterator

import pymysql
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


@pytest.fixture
def mysql_db() -> Iterator[str]:
    server = os.environ.get("TRAINSTORE_TEST_MYSQL_URL")
    if not server:
        pytest.fail('TRAINSTORE_TEST_MYSQL_URL is not set: run eval "$(scripts/test-services)"')
    name = f"ts_py_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        conn.close()
