"""Venv requirements and PostgreSQL settings of the developer tool."""

import pytest
from saasdev import pgcluster, venv
from saasdev.errors import ToolError


def test_odoo_requirements_are_adapted():
    text = ("cbor2==5.4.2 ; python_version < '3.12'\n"
            "python-ldap==3.4.0 ; sys_platform != 'win32'\n"
            "lxml==4.9.3\n")
    adapted = venv.adapted_odoo_requirements(text)
    assert "cbor2==5.4.6 ; python_version < '3.12'" in adapted
    assert "python-ldap" not in adapted
    assert "lxml==4.9.3" in adapted
    assert "zope.interface==6.4.post2" in adapted.splitlines()


def test_venv_cache_location(tmp_path):
    assert venv.cache_root({"SAAS_DEV_CACHE": str(tmp_path)}) == tmp_path
    assert venv.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "saas_manager"


def test_no_pg_variables_means_private_cluster():
    assert pgcluster.external_server({}) is None


def test_postgres_role_is_refused_up_front():
    with pytest.raises(ToolError, match="Odoo refuses"):
        pgcluster.external_server({"PGUSER": "postgres"})


def test_refused_role_is_one_line(pg_env):
    server = pgcluster.PgServer(pg_env["PGHOST"], int(pg_env["PGPORT"]), "no_such_role_x")
    with pytest.raises(ToolError) as info:
        pgcluster.check_server(server, print)
    assert "refused" in str(info.value)
    assert "no_such_role_x" in str(info.value)
    assert "\n" not in str(info.value)


def test_server_from_environment_is_usable(pg_env):
    server = pgcluster.external_server(pg_env)
    pgcluster.check_server(server, print)  # raises when the role cannot create databases
    assert server.port == int(pg_env["PGPORT"])


def test_busy_port_is_detected():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not pgcluster.port_is_free(port)
        assert pgcluster.free_port(port) != port


def test_only_whole_test_database_names_are_dropped():
    """``./dev test`` drops databases by name: a final newline must not make one match."""
    from saasdev.test_cmd import TEST_DATABASE_RE
    for name in ("saas_test_12", "saas_tpl_test_ab12", "acme.saas.test"):
        assert TEST_DATABASE_RE.fullmatch(name)
    for name in ("saas_test_12\n", "acme.saas.test\n", "manager.localhost", "saas_test_",
                 "x.saas.test.evil", "saas_test_\uff11"):
        assert not TEST_DATABASE_RE.fullmatch(name)
