"""Shared fixtures: unique S3 buckets and MariaDB databases on the loopback servers from
scripts/test-services."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator

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


def mysql_connect(url: str) -> pymysql.connections.Connection:
    """A pymysql connection to ``mysql://user[:password]@host[:port][/database]``: the
    server the tests are configured with, never an assumed one."""
    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
    )


@pytest.fixture
def mysql_server() -> str:
    """The configured MariaDB server's URL (no database)."""
    server = os.environ.get("TRAINSTORE_TEST_MYSQL_URL")
    if not server:
        pytest.fail('TRAINSTORE_TEST_MYSQL_URL is not set: run eval "$(scripts/test-services)"')
    return server.rstrip("/")


@pytest.fixture
def mysql_connection() -> Callable[[str], pymysql.connections.Connection]:
    """Opens connections by URL (see :func:`mysql_connect`)."""
    return mysql_connect


@pytest.fixture
def mysql_db(mysql_server: str) -> Iterator[str]:
    server = mysql_server
    name = f"ts_py_{uuid.uuid4().hex[:12]}"
    conn = mysql_connect(server)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"{server}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{name}`")
        conn.close()
