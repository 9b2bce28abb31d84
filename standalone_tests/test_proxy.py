"""engine.proxy: rendering, atomic writes with rollback, and a real `nginx -t`."""

import os
import shutil
import subprocess

import pytest

from engine import proxy

needs_nginx = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")


@pytest.fixture
def certs(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=*.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def nginx_check(tmp_path):
    main = tmp_path / "nginx.conf"
    main.write_text("pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n"
                    "    access_log off;\n    include %s/sites/*.conf;\n}\n" % (tmp_path, tmp_path))
    (tmp_path / "sites").mkdir(exist_ok=True)
    return "nginx -t -q -p %s -c %s" % (tmp_path, main)


def test_wildcard_config_content(certs):
    text = proxy.render_wildcard("example.com", "127.0.0.1:8069", "127.0.0.1:8072", *certs)
    assert "server_name *.example.com;" in text
    assert "location /websocket" in text
    assert "proxy_pass http://saas_odoo_websocket;" in text
    assert "return 301 https://$host$request_uri;" in text
    assert "X-Forwarded-Proto $scheme" in text


@pytest.mark.parametrize("bad", ["exa mple.com", "example.com;", "EXAMPLE.com", ""])
def test_bad_domains_are_refused(certs, bad):
    with pytest.raises(ValueError):
        proxy.render_wildcard(bad, "127.0.0.1:8069", "127.0.0.1:8072", *certs)
    with pytest.raises(ValueError):
        proxy.render_custom_domain(bad, "acme.example.com", *certs)


def test_bad_upstream_and_paths_are_refused(certs):
    with pytest.raises(ValueError):
        proxy.render_wildcard("example.com", "127.0.0.1:8069; evil", "127.0.0.1:8072", *certs)
    with pytest.raises(ValueError):
        proxy.render_wildcard("example.com", "127.0.0.1:8069", "127.0.0.1:8072",
                              "/tmp/x.pem; include /etc/passwd", certs[1])


@needs_nginx
def test_generated_files_pass_nginx_t(tmp_path, certs):
    check = nginx_check(tmp_path)
    sites = tmp_path / "sites"
    proxy.apply(str(sites / proxy.WILDCARD_FILE),
                proxy.render_wildcard("example.com", "127.0.0.1:8069", "127.0.0.1:8072", *certs),
                check, "")
    proxy.apply(str(sites / (proxy.INSTANCE_FILE % "acme")),
                proxy.render_custom_domain("erp.acme.org", "acme.example.com", *certs),
                check, "")
    proxy.run_command(check, "final check")


@needs_nginx
def test_refused_config_is_rolled_back(tmp_path, certs):
    check = nginx_check(tmp_path)
    path = tmp_path / "sites" / proxy.WILDCARD_FILE
    good = proxy.render_wildcard("example.com", "127.0.0.1:8069", "127.0.0.1:8072", *certs)
    proxy.apply(str(path), good, check, "")
    broken = proxy.render_wildcard("example.com", "127.0.0.1:8069", "127.0.0.1:8072",
                                   str(tmp_path / "missing.pem"), certs[1])
    with pytest.raises(proxy.ProxyError, match="nginx validation"):
        proxy.apply(str(path), broken, check, "")
    assert path.read_text() == good
    new = tmp_path / "sites" / (proxy.INSTANCE_FILE % "x")
    with pytest.raises(proxy.ProxyError):
        proxy.apply(str(new), proxy.render_custom_domain(
            "x.org", "x.example.com", str(tmp_path / "missing.pem"), certs[1]), check, "")
    assert not new.exists()
    assert not [name for name in os.listdir(tmp_path / "sites") if name.startswith(".saas-")]


def test_reload_failure_is_reported(tmp_path):
    with pytest.raises(proxy.ProxyError, match="nginx reload"):
        proxy.apply(str(tmp_path / "x.conf"), "# x\n", "", "false")
