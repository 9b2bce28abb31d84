"""Off-site copies of backups in S3-compatible object storage.

A backup on the manager's own disk dies with that disk; a copy in object
storage (AWS S3, MinIO, Backblaze B2, Wasabi, ...) does not.  A copy is only
worth keeping if it is known to be whole, so every transfer is checked:

* upload: the store checks each request's body against the SHA-256 the
  client computed while reading the file (``ChecksumAlgorithm="SHA256"``;
  big files go in parts, each part checked on its own); the file's own
  SHA-256 is stored in the object's metadata; the object is then looked up
  again and its size, that metadata and, for a single-part object, the
  SHA-256 the store records compared with the file's.  A mismatch deletes
  the object;
* download: the size and SHA-256 are checked while the bytes are written to
  a ``.part`` file, which becomes the file only when both match.

Failures raise :class:`OffsiteError` with a message naming the endpoint,
bucket and key (never the secret key); a store that is down, slow or
throttling raises :class:`OffsiteUnreachable`, which the operation runner
retries by itself.  Every location and credential comes in a :class:`Store`
(built by the caller from odoo.conf): nothing is read from the database.
"""

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .errors import RetryableError

#: Files of at least this size are sent as a multipart upload in parts of
#: this size (s3transfer enlarges the parts of files beyond 10,000 parts).
PART_SIZE = 64 * 1024 * 1024
#: Parts in flight at once.
CONCURRENCY = 4
#: Seconds to open a connection, and to wait for the next bytes of an answer.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60
#: Attempts per request, the first included: an unreachable store fails in seconds.
MAX_ATTEMPTS = 3
#: Keys per DeleteObjects request (S3's maximum).
DELETE_BATCH = 1000
#: Bytes read from a download at a time.
CHUNK = 1024 * 1024
#: S3's limit on a key's length (UTF-8 bytes).
MAX_KEY_BYTES = 1024
#: Metadata entry holding the whole file's SHA-256 (hex), sent as ``x-amz-meta-sha256``.
SHA256_META = "sha256"
#: Error codes of a store that is overloaded or failing for a moment.
TRANSIENT_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
    "RequestTimeout", "RequestTimeoutException", "TooManyRequests", "RequestLimitExceeded",
    "BandwidthLimitExceeded",
})
#: What an operator can do about the usual refusals.
HINTS = {
    "NoSuchBucket": "create the bucket or correct saas_s3_bucket",
    "AccessDenied": "check saas_s3_access_key, saas_s3_secret_key and the key's rights on "
                    "the bucket",
    "InvalidAccessKeyId": "saas_s3_access_key is not known to the store",
    "SignatureDoesNotMatch": "saas_s3_secret_key does not belong to saas_s3_access_key",
    "InvalidStorageClass": "this store does not offer the storage class set in "
                           "saas_s3_storage_class",
    "InvalidObjectState": "the object is archived (its storage class needs a restore before "
                          "it can be read): use an instant-access storage class",
}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class OffsiteError(Exception):
    """An off-site transfer failed; the message says where and why, for an operator."""


class OffsiteUnreachable(OffsiteError, RetryableError):
    """The store did not answer, timed out, failed (5xx) or throttled: retry later."""


@dataclass(frozen=True)
class Store:
    """A bucket and how to reach it, from the server's configuration."""

    bucket: str
    endpoint: str = ""  # "" = AWS's own endpoint for the region
    prefix: str = ""  # key prefix, e.g. "saas/prod"
    access_key: str = ""  # "" (with secret_key ""): boto3's own credential chain
    secret_key: str = field(default="", repr=False)
    region: str = "us-east-1"
    storage_class: str = ""  # "" = the store's default (STANDARD)

    def key(self, *parts):
        """The object key of ``parts`` under the prefix, ``prefix/part/part``.

        Parts may contain ``/`` but no empty, ``.`` or ``..`` segment, no
        leading ``/`` and no control character: stores and tools that map keys
        to paths would read such keys differently, or outside the prefix.
        """
        if not parts:
            raise OffsiteError("An object key needs at least one part.")
        prefix = self.prefix.strip("/")
        segments = _segments(prefix, "prefix (saas_s3_prefix)") if prefix else []
        for part in parts:
            segments += _segments(part, "key part")
        key = "/".join(segments)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise OffsiteError("The object key %r is longer than %d bytes." % (key, MAX_KEY_BYTES))
        return key

    def label(self):
        """Where the store is, for messages: endpoint and bucket."""
        return "%s, bucket %r" % (self.endpoint or "AWS S3 (%s)" % self.region, self.bucket)


def _segments(text, what):
    if not isinstance(text, str) or not text:
        raise OffsiteError("Empty %s in an object key." % what)
    if text.startswith("/"):
        raise OffsiteError("The %s %r starts with '/'." % (what, text))
    if _CONTROL_CHARACTER.search(text):
        raise OffsiteError("The %s %r contains a control character." % (what, text))
    segments = text.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise OffsiteError("The %s %r has an empty, '.' or '..' segment." % (what, text))
    return segments


def _client(store):
    """The store's S3 client: made once per store and process (never shared across a fork)."""
    return _new_client(store, os.getpid())


@functools.lru_cache(maxsize=16)
def _new_client(store, _pid):
    """The only place clients are made: timeouts, retries and addressing for every request.

    A custom endpoint is addressed path-style (``endpoint/bucket/key``),
    which every S3-compatible store accepts without wildcard DNS.
    """
    if store.endpoint:
        parts = urlsplit(store.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OffsiteError("The off-site endpoint %r is not an http(s) URL (saas_s3_endpoint)."
                               % store.endpoint)
    if bool(store.access_key) != bool(store.secret_key):
        raise OffsiteError("Off-site store %s: set both saas_s3_access_key and saas_s3_secret_key,"
                           " or neither." % store.label())
    if not store.bucket:
        raise OffsiteError("No off-site bucket configured (saas_s3_bucket).")
    config = Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    s3={"addressing_style": "path" if store.endpoint else "auto"})
    session = boto3.session.Session(aws_access_key_id=store.access_key or None,
                                    aws_secret_access_key=store.secret_key or None,
                                    region_name=store.region or "us-east-1")
    try:
        return session.client("s3", endpoint_url=store.endpoint or None, config=config)
    except (BotoCoreError, ValueError) as exc:
        raise OffsiteError("Off-site store %s cannot be used: %s" % (store.label(), exc)) from exc


def _status(exc):
    """The HTTP status of the store's refusal (0 when there was no answer)."""
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0


def _translate(store, what, exc):
    """The off-site error for a boto3/botocore failure while doing ``what``."""
    where = "Off-site store %s: %s" % (store.label(), what)
    if isinstance(exc, ClientError):
        return _refusal(where, exc)
    if isinstance(exc, NoCredentialsError):
        return OffsiteError("%s failed: no credentials (set saas_s3_access_key and "
                            "saas_s3_secret_key)." % where)
    if isinstance(exc, ChecksumError):
        return OffsiteError("%s failed: the bytes received do not match the checksum the store "
                            "sent (%s)." % (where, exc))
    if isinstance(exc, SSLError):  # a certificate problem does not go away by itself
        return OffsiteError("%s failed: TLS error: %s." % (where, exc))
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return OffsiteUnreachable("%s failed: the store is unreachable (%s); retried later."
                                  % (where, exc))
    return OffsiteError("%s failed: %s." % (where, exc))


def _refusal(where, exc):
    """The store answered with an error: retryable when it is failing or throttling."""
    error, status = exc.response.get("Error", {}), _status(exc)
    code = str(error.get("Code") or "?")
    message = "%s failed: %s (HTTP %s)%s" % (
        where, code, status, ": " + error["Message"] if error.get("Message") else "")
    if (status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.TOO_MANY_REQUESTS
            or code in TRANSIENT_CODES):
        return OffsiteUnreachable(message + "; retried later.")
    hint = HINTS.get(code) or (HINTS["AccessDenied"] if status == HTTPStatus.FORBIDDEN else "")
    return OffsiteError(message + (" (%s)." % hint if hint else "."))


@contextlib.contextmanager
def _translated(store, what):
    """Raise boto3's and botocore's failures inside the block as off-site errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _translate(store, what, exc) from exc


def _check_sha256(sha256):
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise OffsiteError("%r is not a SHA-256 in lowercase hexadecimal." % (sha256,))


def upload(store, path, key, size, sha256):
    """Copy the file at ``path`` (``size`` bytes, SHA-256 ``sha256`` in hex) to ``key``.

    Returns only once the stored object is known to match (see the module's
    docstring); otherwise the object is deleted and :class:`OffsiteError`
    raised.  An existing object under ``key`` is replaced.
    """
    _check_sha256(sha256)
    try:
        actual = os.stat(path).st_size
    except OSError as exc:
        raise OffsiteError("Cannot upload %s: %s." % (path, exc.strerror or exc)) from exc
    if actual != size:
        raise OffsiteError("Not uploaded: %s is %d bytes, not the %d recorded."
                           % (path, actual, size))
    client = _client(store)
    extra = {"ChecksumAlgorithm": "SHA256", "Metadata": {SHA256_META: sha256}}
    if store.storage_class:
        extra["StorageClass"] = store.storage_class
    transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                              max_concurrency=CONCURRENCY)
    with _translated(store, "upload of %s to %r" % (path, key)):
        with create_transfer_manager(client, transfer) as manager:
            manager.upload(os.fspath(path), store.bucket, key, extra_args=extra).result()
        stored = client.head_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
    problems = _mismatches(stored, size, sha256, single_part=size < PART_SIZE)
    if problems:
        _delete_mismatch(store, key, problems)


def _mismatches(stored, size, sha256, single_part):
    """How the object's HEAD answer differs from the file (empty when it matches).

    Only a single-part object's SHA-256 is the whole object's: a multipart
    object's is a checksum of its parts' checksums.
    """
    problems = []
    if stored.get("ContentLength") != size:
        problems.append("%s bytes instead of %d" % (stored.get("ContentLength"), size))
    if stored.get("Metadata", {}).get(SHA256_META) != sha256:
        problems.append("its recorded SHA-256 is %r" % stored.get("Metadata", {}).get(SHA256_META))
    full = stored.get("ChecksumSHA256")
    if single_part and full and _hex(full) != sha256:
        problems.append("the store records SHA-256 %s" % _hex(full))
    return problems


def _hex(checksum):
    """An S3 checksum (base64) in hex, or the raw value when it is not base64."""
    try:
        return base64.b64decode(checksum, validate=True).hex()
    except (binascii.Error, ValueError):
        return checksum


def _delete_mismatch(store, key, problems):
    reason = "; ".join(problems)
    try:
        delete(store, [key])
    except OffsiteError as exc:
        raise OffsiteError("Off-site store %s: the uploaded %r does not match the file (%s), and "
                           "deleting it failed: %s" % (store.label(), key, reason, exc)) from exc
    raise OffsiteError("Off-site store %s: the uploaded %r does not match the file (%s); it was "
                       "deleted." % (store.label(), key, reason))


def download(store, key, path, size, sha256):
    """Copy ``key`` to a new file at ``path``, checked against ``size`` and ``sha256``.

    The bytes go to ``path + ".part"`` (created exclusively, mode 0600: a
    backup holds customer data), hashed and counted as they are written;
    only when both match does the file appear at ``path`` (a hard link: unlike
    a rename it never replaces a file that appeared meanwhile).  The
    ``.part`` is removed whatever happens.  An existing ``path`` is refused.
    """
    _check_sha256(sha256)
    path = os.fspath(path)
    if os.path.lexists(path):
        raise OffsiteError("Not downloaded: %s exists (a download never replaces a file)." % path)
    part = path + ".part"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise OffsiteError("Not downloaded: %s exists (another download to %s is running, or one "
                           "was interrupted: remove it)." % (part, path)) from exc
    except OSError as exc:
        raise OffsiteError("Cannot create %s: %s." % (part, exc.strerror or exc)) from exc
    try:
        with open(fd, "wb") as handle:
            _receive(store, key, handle, size, sha256)
            os.fsync(handle.fileno())
        os.link(part, path)
    except FileExistsError as exc:
        raise OffsiteError("Not downloaded: %s appeared during the download." % path) from exc
    except OSError as exc:
        raise OffsiteError("Cannot write %s: %s." % (path, exc.strerror or exc)) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


def _receive(store, key, handle, size, sha256):
    """Write the object's bytes to ``handle``, refusing any other size or SHA-256."""
    what = "download of %r" % key
    digest, received = hashlib.sha256(), 0
    with _translated(store, what):
        response = _client(store).get_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
        with contextlib.closing(response["Body"]) as body:
            if response.get("ContentLength") != size:
                raise OffsiteError("Off-site store %s: %s refused: the object is %s bytes, not the"
                                   " %d recorded." % (store.label(), what,
                                                      response.get("ContentLength"), size))
            for chunk in body.iter_chunks(CHUNK):
                received += len(chunk)
                digest.update(chunk)
                handle.write(chunk)
    if received != size or digest.hexdigest() != sha256:
        raise OffsiteError("Off-site store %s: %s refused: %d bytes with SHA-256 %s, not the %d "
                           "bytes with SHA-256 %s recorded." % (store.label(), what, received,
                                                                digest.hexdigest(), size, sha256))


def delete(store, keys):
    """Delete ``keys`` (an absent key is not an error), up to 1,000 per request."""
    keys = list(keys)
    client = _client(store)
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start:start + DELETE_BATCH]
        with _translated(store, "deleting %d object(s)" % len(batch)):
            response = client.delete_objects(Bucket=store.bucket, Delete={
                "Objects": [{"Key": key} for key in batch], "Quiet": True})
        failed = [error for error in response.get("Errors", ())
                  if error.get("Code") != "NoSuchKey"]
        if failed:
            transient = all(error.get("Code") in TRANSIENT_CODES for error in failed)
            details = "; ".join("%r: %s %s" % (error.get("Key"), error.get("Code"),
                                                error.get("Message", "")) for error in failed[:5])
            raise (OffsiteUnreachable if transient else OffsiteError)(
                "Off-site store %s: %d object(s) not deleted: %s"
                % (store.label(), len(failed), details))


def head(store, key):
    """The size of the object at ``key``, or ``None`` when there is none.

    A missing bucket answers a HEAD like a missing key does (a bare 404): it
    is told apart, and raised, so that a wrong bucket never reads as "no copy".
    """
    what = "looking up %r" % key
    client = _client(store)
    try:
        return client.head_object(Bucket=store.bucket, Key=key)["ContentLength"]
    except ClientError as exc:
        if _status(exc) != HTTPStatus.NOT_FOUND:
            raise _translate(store, what, exc) from exc
    except BotoCoreError as exc:
        raise _translate(store, what, exc) from exc
    _require_bucket(store)
    return None


def _require_bucket(store):
    try:
        _client(store).head_bucket(Bucket=store.bucket)
    except ClientError as exc:
        if _status(exc) == HTTPStatus.NOT_FOUND:
            raise OffsiteError("Off-site store %s: the bucket does not exist (%s)."
                               % (store.label(), HINTS["NoSuchBucket"])) from exc
        raise _translate(store, "checking the bucket", exc) from exc
    except BotoCoreError as exc:
        raise _translate(store, "checking the bucket", exc) from exc


def check(store):
    """Prove the store usable as configured: a probe file goes through :func:`upload`,
    :func:`download` and :func:`delete`, exactly as a backup's copy would.

    So the endpoint, the credentials, the rights to write, read and delete,
    the storage class and the checksums are all exercised; the error says
    which failed.
    """
    token = secrets.token_hex(8)
    key = store.key("saas-probe-%s" % token)
    body = b"saas_manager off-site probe %s\n" % token.encode()
    digest = hashlib.sha256(body).hexdigest()
    with tempfile.TemporaryDirectory(prefix="saas-offsite-") as folder:
        sent, received = os.path.join(folder, "sent"), os.path.join(folder, "received")
        with open(sent, "wb") as handle:
            handle.write(body)
        try:
            upload(store, sent, key, len(body), digest)
            download(store, key, received, len(body), digest)
        except OffsiteError:
            with contextlib.suppress(OffsiteError):
                delete(store, [key])
            raise
    delete(store, [key])
