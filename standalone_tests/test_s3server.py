"""The developer tool's S3 server (moto) and the off-site options of its odoo.conf."""

import configparser
import socket
import urllib.request
from types import SimpleNamespace

import pytest
from saasdev import pgcluster, s3server
from saasdev.odoo_conf import write_conf


def test_server_starts_answers_and_stops(tmp_path):
    venv = s3server.S3Venv()
    if not (venv.path / ".complete").is_file():
        pytest.skip("moto's virtualenv %s is not built (./dev test builds it)" % venv.path)
    server = s3server.S3Server(venv.python, tmp_path / "s3server.log")
    try:
        server.start(print)
        assert server.endpoint.startswith("http://127.0.0.1:")
        server.create_bucket("saas-tool-test")
        with urllib.request.urlopen(server.endpoint + "/", timeout=5) as answer:
            assert b"<Name>saas-tool-test</Name>" in answer.read()
    finally:
        server.stop(print)
    assert server.proc.returncode is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def _write(conf, tmp_path, **options):
    return write_conf(conf, odoo=SimpleNamespace(addons_paths=[tmp_path / "odoo-addons"]),
                      addons_dir=tmp_path / "addons", data_dir=tmp_path / "data",
                      pg=pgcluster.PgServer("127.0.0.1", 5432, "odoo"), http_port=8069,
                      **options)


def test_dev_conf_points_at_the_server_and_forgets_it_without_one(tmp_path):
    server = s3server.S3Server("python3", tmp_path / "s3server.log")
    server.port = 9000
    conf = tmp_path / "odoo.conf"
    _write(conf, tmp_path, offsite=server.dev_options())
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf, encoding="utf-8")
    options = parser["options"]
    assert options["saas_s3_endpoint"] == "http://127.0.0.1:9000"
    assert options["saas_s3_bucket"] == s3server.DEV_BUCKET
    assert options["saas_s3_secret_key"] == s3server.SECRET_KEY
    assert options["saas_s3_storage_class"] == ""

    # A later run without a server (the test conf is always written so): none left.
    written = _write(conf, tmp_path)
    assert not [name for name in written if name.startswith("saas_s3_")]
    assert "saas_s3_" not in conf.read_text(encoding="utf-8")
