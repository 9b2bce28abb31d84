"""Off-site copies against a real S3-protocol server (moto's, started by ./dev test).

Each test gets a bucket of its own.  Other bytes are put under a key with a
plain boto3 client, as a damaged or tampered store would serve them.  moto
records the SHA-256 an upload sends without checking it against the bytes
(AWS does check it), so these tests show the engine's own checks.
"""

import base64
import dataclasses
import hashlib
import os
import socket
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from engine import offsite
from engine.errors import RetryableError

MIB = 1024 * 1024


@pytest.fixture(scope="session")
def s3_settings():
    """Where moto's server is and the keys to use, from ./dev test's environment."""
    endpoint = os.environ.get("SAAS_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.skip("SAAS_TEST_S3_ENDPOINT is not set: no S3 server to test against "
                    "(./dev test starts moto's and says loudly why it could not)")
    return {"endpoint": endpoint,
            "access_key": os.environ.get("SAAS_TEST_S3_ACCESS_KEY", "testing"),
            "secret_key": os.environ.get("SAAS_TEST_S3_SECRET_KEY", "testing"),
            "region": os.environ.get("SAAS_TEST_S3_REGION", "us-east-1")}


@pytest.fixture(scope="session")
def raw(s3_settings):
    """A plain boto3 client of the same server, for what the engine must not do itself."""
    return boto3.client("s3", endpoint_url=s3_settings["endpoint"],
                        aws_access_key_id=s3_settings["access_key"],
                        aws_secret_access_key=s3_settings["secret_key"],
                        region_name=s3_settings["region"],
                        config=Config(s3={"addressing_style": "path"}))


@pytest.fixture
def store(s3_settings, raw):
    """A Store on a new bucket, emptied and removed afterwards."""
    bucket = "saas-test-" + uuid.uuid4().hex[:12]
    raw.create_bucket(Bucket=bucket)
    yield offsite.Store(bucket=bucket, prefix="saas/test", **s3_settings)
    for item in raw.list_objects_v2(Bucket=bucket).get("Contents", []):
        raw.delete_object(Bucket=bucket, Key=item["Key"])
    raw.delete_bucket(Bucket=bucket)


def _file(path, size):
    """A file of ``size`` random bytes; returns ``(path, size, sha256)``."""
    data = os.urandom(size)
    path.write_bytes(data)
    return path, size, hashlib.sha256(data).hexdigest()


def _keys(raw, store):
    return [item["Key"] for item in raw.list_objects_v2(Bucket=store.bucket).get("Contents", [])]


def _closed_port():
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_round_trip_is_checked_both_ways(store, raw, tmp_path):
    path, size, sha256 = _file(tmp_path / "acme.dump", 300 * 1024)
    key = store.key("acme.example.com", "acme-20260215T020000Z.dump")
    offsite.upload(store, path, key, size, sha256)

    assert offsite.head(store, key) == size
    stored = raw.head_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
    assert stored["Metadata"] == {"sha256": sha256}
    # What the server recorded as the body's SHA-256 (base64) is the file's.
    assert base64.b64decode(stored["ChecksumSHA256"]).hex() == sha256

    back = tmp_path / "back.dump"
    offsite.download(store, key, back, size, sha256)
    assert back.read_bytes() == path.read_bytes()
    assert oct(back.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "back.dump.part").exists()


def test_upload_with_a_wrong_sha256_leaves_no_object(store, raw, tmp_path):
    path, size, _ = _file(tmp_path / "acme.dump", 1000)
    key = store.key("wrong.dump")
    with pytest.raises(offsite.OffsiteError, match=r"does not match the file.*it was deleted"):
        offsite.upload(store, path, key, size, hashlib.sha256(b"other bytes").hexdigest())
    assert _keys(raw, store) == []


def test_upload_refuses_a_file_of_another_size(store, raw, tmp_path):
    path, size, sha256 = _file(tmp_path / "acme.dump", 1000)
    with pytest.raises(offsite.OffsiteError, match="is 1000 bytes, not the 999 recorded"):
        offsite.upload(store, path, store.key("acme.dump"), size - 1, sha256)
    with pytest.raises(offsite.OffsiteError, match="not a SHA-256"):
        offsite.upload(store, path, store.key("acme.dump"), size, sha256.upper())
    assert _keys(raw, store) == []


def test_altered_object_is_refused_and_nothing_is_left(store, raw, tmp_path):
    path, size, sha256 = _file(tmp_path / "acme.dump", 64 * 1024)
    key = store.key("acme.dump")
    offsite.upload(store, path, key, size, sha256)
    raw.put_object(Bucket=store.bucket, Key=key, Body=os.urandom(size))  # same size, other bytes

    back = tmp_path / "back.dump"
    with pytest.raises(offsite.OffsiteError, match="SHA-256 .* not the %d bytes with SHA-256 %s"
                       % (size, sha256)):
        offsite.download(store, key, back, size, sha256)
    assert sorted(os.listdir(tmp_path)) == ["acme.dump"]

    raw.put_object(Bucket=store.bucket, Key=key, Body=b"short")
    with pytest.raises(offsite.OffsiteError, match="the object is 5 bytes, not the %d" % size):
        offsite.download(store, key, back, size, sha256)
    assert sorted(os.listdir(tmp_path)) == ["acme.dump"]


def test_download_refuses_an_existing_file_or_a_leftover_part(store, tmp_path):
    path, size, sha256 = _file(tmp_path / "acme.dump", 1000)
    key = store.key("acme.dump")
    offsite.upload(store, path, key, size, sha256)
    existing = tmp_path / "existing"
    existing.write_bytes(b"keep me")
    with pytest.raises(offsite.OffsiteError, match="exists"):
        offsite.download(store, key, existing, size, sha256)
    assert existing.read_bytes() == b"keep me"

    leftover = tmp_path / "back.part"
    leftover.write_bytes(b"an interrupted download")
    with pytest.raises(offsite.OffsiteError, match=r"back\.part exists.*remove it"):
        offsite.download(store, key, tmp_path / "back", size, sha256)
    assert leftover.read_bytes() == b"an interrupted download"  # not ours: not removed
    assert not (tmp_path / "back").exists()


def test_download_of_a_missing_key_says_so(store, tmp_path):
    with pytest.raises(offsite.OffsiteError, match="NoSuchKey") as info:
        offsite.download(store, store.key("absent.dump"), tmp_path / "back", 1, "0" * 64)
    assert not isinstance(info.value, RetryableError)
    assert os.listdir(tmp_path) == []


def test_delete_is_idempotent_and_batched(store, raw, tmp_path, monkeypatch):
    path, size, sha256 = _file(tmp_path / "f", 10)
    keys = [store.key("k%d" % n) for n in range(5)]
    for key in keys:
        offsite.upload(store, path, key, size, sha256)
    monkeypatch.setattr(offsite, "DELETE_BATCH", 2)
    offsite.delete(store, [*keys, store.key("never-there")])
    assert _keys(raw, store) == []
    assert offsite.head(store, keys[0]) is None
    offsite.delete(store, keys)  # again: nothing to delete, no error
    offsite.delete(store, [])


def test_keys_stay_under_the_prefix():
    store = offsite.Store(bucket="b", prefix="/saas/prod/")
    assert store.key("acme.example.com", "x-20260215T020000Z.dump") \
        == "saas/prod/acme.example.com/x-20260215T020000Z.dump"
    assert store.key("a/b") == "saas/prod/a/b"
    assert offsite.Store(bucket="b").key("x.dump") == "x.dump"
    for parts in [(), ("",), ("/etc/passwd",), ("..",), ("a/../b",), ("a//b",), ("a/",),
                  ("./a",), ("a\nb",), ("a", ""), ("x" * 1025,), (None,)]:
        with pytest.raises(offsite.OffsiteError):
            store.key(*parts)
    with pytest.raises(offsite.OffsiteError, match="saas_s3_prefix"):
        offsite.Store(bucket="b", prefix="saas/../other").key("x")


def test_secret_key_is_never_shown():
    store = offsite.Store(bucket="b", endpoint="http://127.0.0.1:1", access_key="AKIAEXAMPLE",
                          secret_key="very-secret-value")
    assert "very-secret-value" not in repr(store)
    assert "very-secret-value" not in store.label()


def test_unreachable_store_fails_fast_and_is_retryable(tmp_path):
    endpoint = "http://127.0.0.1:%d" % _closed_port()
    store = offsite.Store(bucket="saas-unreachable", endpoint=endpoint, access_key="a",
                          secret_key="very-secret-value")
    path, size, sha256 = _file(tmp_path / "f", 10)
    calls = [lambda: offsite.upload(store, path, store.key("f"), size, sha256),
             lambda: offsite.download(store, store.key("f"), tmp_path / "back", size, sha256),
             lambda: offsite.head(store, store.key("f")),
             lambda: offsite.delete(store, [store.key("f")]),
             lambda: offsite.check(store)]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(offsite.OffsiteUnreachable) as info:
            call()
        assert time.monotonic() - started < 15
        assert isinstance(info.value, RetryableError)
        message = str(info.value)
        assert endpoint in message and "saas-unreachable" in message
        assert "very-secret-value" not in message
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_missing_bucket_is_an_operator_error(s3_settings, tmp_path):
    # moto's server accepts any key pair (it checks credentials only when IAM
    # authentication is switched on), so a wrong secret cannot be shown to fail
    # here; a missing bucket is the refusal it does give.
    store = offsite.Store(bucket="saas-no-such-bucket-" + uuid.uuid4().hex[:8], **s3_settings)
    path, size, sha256 = _file(tmp_path / "f", 10)
    for call in (lambda: offsite.upload(store, path, store.key("f"), size, sha256),
                 lambda: offsite.head(store, store.key("f")),
                 lambda: offsite.check(store)):
        with pytest.raises(offsite.OffsiteError) as info:
            call()
        assert not isinstance(info.value, RetryableError)
        assert store.bucket in str(info.value)
        assert "saas_s3_bucket" in str(info.value)


def test_bad_configuration_is_refused_clearly(s3_settings):
    half = offsite.Store(bucket="b", endpoint=s3_settings["endpoint"], access_key="only-the-id")
    with pytest.raises(offsite.OffsiteError, match="both saas_s3_access_key and saas_s3_secret"):
        offsite.head(half, "k")
    with pytest.raises(offsite.OffsiteError, match="not an http"):
        offsite.head(offsite.Store(bucket="b", endpoint="s3.example.com"), "k")


def test_storage_class_is_passed_through(store, raw, tmp_path):
    path, size, sha256 = _file(tmp_path / "f", 10)
    offsite.upload(store, path, store.key("default"), size, sha256)
    infrequent = dataclasses.replace(store, storage_class="STANDARD_IA")
    offsite.upload(infrequent, path, store.key("ia"), size, sha256)
    # S3 (and moto) name no class for STANDARD objects.
    assert raw.head_object(Bucket=store.bucket, Key=store.key("default")).get(
        "StorageClass", "STANDARD") == "STANDARD"
    assert raw.head_object(Bucket=store.bucket, Key=store.key("ia"))["StorageClass"] \
        == "STANDARD_IA"


def test_check_leaves_nothing_behind(store, raw):
    offsite.check(store)
    assert _keys(raw, store) == []


def test_check_refuses_a_class_that_cannot_be_read_back(store, raw):
    archived = dataclasses.replace(store, storage_class="GLACIER")
    with pytest.raises(offsite.OffsiteError, match=r"InvalidObjectState.*restore"):
        offsite.check(archived)
    assert _keys(raw, store) == []


def test_multipart_upload_is_verified(store, raw, tmp_path, monkeypatch):
    monkeypatch.setattr(offsite, "PART_SIZE", 5 * MIB)  # S3's smallest part
    path, size, sha256 = _file(tmp_path / "big.dump", 6 * MIB)
    key = store.key("big.dump")
    offsite.upload(store, path, key, size, sha256)
    stored = raw.head_object(Bucket=store.bucket, Key=key)
    assert stored["ETag"].endswith('-2"')  # two parts
    assert stored["Metadata"] == {"sha256": sha256}

    back = tmp_path / "back.dump"
    offsite.download(store, key, back, size, sha256)
    assert back.read_bytes() == path.read_bytes()

    with pytest.raises(offsite.OffsiteError, match="SHA-256"):
        offsite.download(store, key, tmp_path / "again.dump", size, "0" * 64)
