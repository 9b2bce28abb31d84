"""A real S3-protocol server on loopback for ./dev: moto's standalone server.

Off-site copies of backups go to S3-compatible object storage.  ``./dev
test`` starts this server once per run and hands its address to both test
layers (``SAAS_TEST_S3_*`` variables); ``./dev run`` starts it too and points
the dev odoo.conf at it, so off-site copies work on a developer's machine.
Everything it stores is in memory: gone when the command ends.

moto runs from its own virtualenv (see ``s3server-requirements.txt``): its
requirements clash with Odoo 18's pins.
"""

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import ToolError
from .pgcluster import free_port
from .venv import Venv

REQUIREMENTS = Path(__file__).with_name("s3server-requirements.txt")
#: moto accepts any key pair; these only make the requests look like real ones.
ACCESS_KEY = "saas-dev-access"
SECRET_KEY = "saas-dev-secret"
REGION = "us-east-1"
#: The bucket, and key prefix, of ./dev run's off-site copies.
DEV_BUCKET = "saas-dev-backups"
DEV_PREFIX = "dev"
#: Seconds the server may take to answer after it was started.
START_TIMEOUT = 60
#: Seconds it may take to stop before it is killed.
STOP_TIMEOUT = 10


class S3Venv(Venv):
    """The virtualenv of moto's server alone, cached like the main one."""

    prefix = "venv-s3-"

    def __init__(self, env=None):
        super().__init__(REQUIREMENTS.parent, None, env)

    def _requirement_texts(self):
        return {REQUIREMENTS.name: REQUIREMENTS.read_text(encoding="utf-8")}


class S3Server:
    """moto's server, started by :meth:`start` on a free loopback port."""

    def __init__(self, python, logfile):
        self.python = str(python)
        self.logfile = Path(logfile)
        self.port = None
        self.proc = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, say):
        """Start the server and return once it answers S3 requests."""
        self.port = free_port()
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "w", encoding="utf-8") as log:
            # Its own session: the terminal's Ctrl-C reaches ./dev only, which
            # stops it after what depends on it (Odoo, the tests).
            self.proc = subprocess.Popen(
                [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._wait()
        say("s3: moto's S3 server on %s (in memory; log: %s)" % (self.endpoint, self.logfile))

    def _wait(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ToolError("the S3 server (moto) exited at start with status %d; see %s"
                                % (self.proc.returncode, self.logfile))
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2):
                    return
            except OSError:  # not listening yet (URLError and socket errors are OSErrors)
                if time.monotonic() > deadline:
                    raise ToolError("the S3 server (moto) did not answer on %s within %d s; see %s"
                                    % (self.endpoint, START_TIMEOUT, self.logfile)) from None
                time.sleep(0.1)

    def create_bucket(self, name):
        """Create bucket ``name`` (moto takes unsigned requests, so no S3 client is needed)."""
        request = urllib.request.Request("%s/%s" % (self.endpoint, name), method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.URLError as exc:
            raise ToolError("creating bucket %s on the S3 server failed: %s" % (name, exc)) from exc

    def test_env(self):
        """Variables that tell the tests where the server is and which keys to use."""
        return {"SAAS_TEST_S3_ENDPOINT": self.endpoint, "SAAS_TEST_S3_ACCESS_KEY": ACCESS_KEY,
                "SAAS_TEST_S3_SECRET_KEY": SECRET_KEY, "SAAS_TEST_S3_REGION": REGION}

    def dev_options(self):
        """odoo.conf options that send ./dev run's off-site copies here (see CONFIGURATION.md)."""
        return {"saas_s3_endpoint": self.endpoint, "saas_s3_bucket": DEV_BUCKET,
                "saas_s3_prefix": DEV_PREFIX, "saas_s3_access_key": ACCESS_KEY,
                "saas_s3_secret_key": SECRET_KEY, "saas_s3_region": REGION,
                "saas_s3_storage_class": ""}

    def stop(self, say):
        """Stop the server (SIGTERM, then SIGKILL); what it stored is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        say("s3: stopping moto's S3 server")
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
