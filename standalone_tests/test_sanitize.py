"""engine.sanitize on a real database shaped like an Odoo clone."""

import psycopg2
import pytest

from engine import login, sanitize

SCHEMA = """
CREATE TABLE ir_config_parameter (id serial, key varchar UNIQUE, value text, create_uid int,
    create_date timestamp, write_uid int, write_date timestamp);
CREATE TABLE res_users (id serial, login varchar, totp_secret varchar, password varchar,
    active bool DEFAULT true);
CREATE TABLE res_users_apikeys (id serial, key varchar);
CREATE TABLE auth_totp_device (id serial, key varchar);
CREATE TABLE ir_mail_server (id serial, smtp_user varchar, smtp_pass varchar, active bool);
INSERT INTO ir_config_parameter (key, value) VALUES
    ('database.uuid', 'tpl-uuid'), ('database.secret', 'tpl-secret'),
    ('database.create_date', '2020-01-01 00:00:00'), ('web.base.url', 'http://localhost:8069'),
    ('google_gmail_client_secret', 's1'), ('recaptcha_private_key', 's2'),
    ('database.enterprise_code', 'M123'), ('mail.catchall.domain', 'keep.example.com');
INSERT INTO res_users (login, totp_secret, password) VALUES ('admin', 'TOTPSECRET', 'tpl-hash'),
    ('demo', NULL, 'demo-hash'), ('portal', NULL, 'portal-hash'), ('__system__', NULL, NULL);
INSERT INTO res_users_apikeys (key) VALUES ('hash');
INSERT INTO auth_totp_device (key) VALUES ('hash');
INSERT INTO ir_mail_server (smtp_user, smtp_pass, active) VALUES ('u', 'p', true);
"""


@pytest.fixture
def clone(pg_params, scratch_db):
    name = scratch_db("saas_pytest_clone")
    conn = psycopg2.connect(dbname=name, **pg_params)
    with conn.cursor() as cr:
        cr.execute(SCHEMA)
    conn.commit()
    yield conn
    conn.close()


def params(conn):
    with conn.cursor() as cr:
        cr.execute("SELECT key, value FROM ir_config_parameter")
        return dict(cr.fetchall())


def scalar(conn, query):
    with conn.cursor() as cr:
        cr.execute(query)
        return cr.fetchone()[0]


def test_new_identity_and_secrets_removed(clone):
    applied = sanitize.sanitize(clone, "https://acme.example.com")
    values = params(clone)
    assert values["database.uuid"] not in ("tpl-uuid", "")
    assert values["database.secret"] not in ("tpl-secret", "")
    assert values["database.create_date"] != "2020-01-01 00:00:00"
    assert values["web.base.url"] == "https://acme.example.com"
    assert values["web.base.url.freeze"] == "True"
    for gone in ("google_gmail_client_secret", "recaptcha_private_key",
                 "database.enterprise_code"):
        assert gone not in values
    assert values["mail.catchall.domain"] == "keep.example.com"
    assert scalar(clone, "SELECT count(*) FROM res_users_apikeys") == 0
    assert scalar(clone, "SELECT count(*) FROM auth_totp_device") == 0
    assert scalar(clone, "SELECT totp_secret FROM res_users") is None
    assert scalar(clone, "SELECT smtp_pass IS NULL AND NOT active FROM ir_mail_server")
    # statements for tables this database does not have were skipped, not failed
    assert not any("fetchmail_server" in statement for statement in applied)


def test_two_clones_get_different_identities(clone):
    sanitize.sanitize(clone, "https://a.example.com")
    first = params(clone)["database.uuid"]
    sanitize.sanitize(clone, "https://a.example.com")
    assert params(clone)["database.uuid"] != first


@pytest.mark.parametrize("url", ["", "ftp://x", "https://x y", "https://a.com/'; --"])
def test_bad_url_is_refused_before_any_change(clone, url):
    with pytest.raises(ValueError):
        sanitize.sanitize(clone, url)
    assert params(clone)["database.uuid"] == "tpl-uuid"


def test_no_user_keeps_a_password_and_the_admin_gets_the_customer_login(clone):
    sanitize.sanitize(clone, "https://acme.example.com", admin=("admin", "owner@acme.test"))
    with clone.cursor() as cr:
        cr.execute("SELECT login, password FROM res_users ORDER BY id")
        users = dict(cr.fetchall())
    assert users == {"owner@acme.test": None, "demo": None, "portal": None, "__system__": None}


def test_hand_over_refuses_a_template_without_its_admin(clone):
    with pytest.raises(ValueError):
        sanitize.sanitize(clone, "https://acme.example.com", admin=("nobody", "owner@acme.test"))
    clone.rollback()
    assert scalar(clone, "SELECT count(*) FROM res_users WHERE login = 'admin'") == 1


def test_set_password_writes_a_hash_for_an_active_user_only(clone):
    new_hash = "$pbkdf2-sha512$600000$other$hash"
    sanitize.set_password(clone, "demo", new_hash)
    assert scalar(clone, "SELECT password FROM res_users WHERE login = 'demo'") == new_hash
    with pytest.raises(ValueError):
        sanitize.set_password(clone, "demo", "clear-text")
    clone.rollback()
    with pytest.raises(ValueError):
        sanitize.set_password(clone, "nobody", new_hash)


def test_public_signup_is_closed_and_the_login_table_made(clone):
    sanitize.sanitize(clone, "https://acme.example.com")
    assert params(clone)["auth_signup.invitation_scope"] == "b2b"
    assert scalar(clone, "SELECT to_regclass('saas_login_token') IS NOT NULL")


def test_login_links_of_the_template_do_not_open_its_clones(clone):
    token = login.issue(clone, "admin")
    sanitize.sanitize(clone, "https://acme.example.com")
    assert scalar(clone, "SELECT count(*) FROM saas_login_token") == 0
    with clone.cursor() as cr:
        assert login.redeem(cr, token) is None


CLAIM_SCHEMA = """
CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar, email varchar, tz varchar,
    lang varchar);
CREATE TABLE res_company (id serial PRIMARY KEY, name varchar, email varchar, partner_id int);
CREATE TABLE res_lang (id serial, code varchar, active bool);
ALTER TABLE res_users ADD COLUMN partner_id int, ADD COLUMN company_id int;
INSERT INTO res_partner (name, email, tz, lang) VALUES ('My Company', 'info@tpl', NULL, 'en_US'),
    ('Administrator', 'admin@tpl', 'UTC', 'en_US');
INSERT INTO res_company (name, email, partner_id) VALUES ('My Company', 'info@tpl', 1);
INSERT INTO res_lang (code, active) VALUES ('en_US', true), ('fr_FR', false);
UPDATE res_users SET partner_id = 2, company_id = 1 WHERE login = 'admin';
"""


def claimed(clone, lang):
    with clone.cursor() as cr:
        cr.execute(CLAIM_SCHEMA)
    clone.commit()
    sanitize.sanitize(clone, "https://pool.invalid", admin=("admin", "standby-1@pool.invalid"))
    sanitize.claim(clone, "https://acme.example.com", placeholder="standby-1@pool.invalid",
                   login="owner@acme.test", company={"name": "Acme", "email": "owner@acme.test"},
                   admin={"name": "Ann Owner", "email": "owner@acme.test", "lang": lang,
                          "tz": "Europe/Brussels"})
    with clone.cursor() as cr:
        cr.execute("SELECT u.login, u.password, p.name, p.email, p.tz, p.lang FROM res_users u "
                   "JOIN res_partner p ON p.id = u.partner_id")
        return cr.fetchone()


def test_claim_gives_a_standby_its_customer(clone):
    assert claimed(clone, "en_US") == (
        "owner@acme.test", None, "Ann Owner", "owner@acme.test", "Europe/Brussels", "en_US")
    assert scalar(clone, "SELECT name || ' ' || email FROM res_company") == \
        "Acme owner@acme.test"
    assert scalar(clone, "SELECT name FROM res_partner WHERE id = 1") == "Acme"
    assert params(clone)["web.base.url"] == "https://acme.example.com"


def test_claim_keeps_the_language_when_the_customer_s_is_not_active(clone):
    assert claimed(clone, "fr_FR")[5] == "en_US"


def test_claim_refuses_a_database_without_the_placeholder(clone):
    with clone.cursor() as cr:
        cr.execute(CLAIM_SCHEMA)
    clone.commit()
    with pytest.raises(ValueError):
        sanitize.claim(clone, "https://acme.example.com", placeholder="nobody@pool.invalid",
                       login="x@y.z", company={"name": "A", "email": "x@y.z"},
                       admin={"name": "A", "email": "x@y.z"})
    assert scalar(clone, "SELECT count(*) FROM res_users WHERE login = 'x@y.z'") == 0
