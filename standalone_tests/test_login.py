"""engine.login: one-click login tokens in a real database shaped like a client's."""

import pytest

from engine import login

SCHEMA = """
CREATE TABLE res_users (id serial PRIMARY KEY, login varchar, active bool DEFAULT true);
INSERT INTO res_users (login) VALUES ('owner@acme.test'), ('former@acme.test');
UPDATE res_users SET active = false WHERE login = 'former@acme.test';
"""


@pytest.fixture
def db(schema_db):
    return schema_db(SCHEMA, "saas_pytest_login")


def redeem(conn, token):
    with conn.cursor() as cr:
        uid = login.redeem(cr, token)
    conn.commit()
    return uid


def scalar(conn, query):
    with conn.cursor() as cr:
        cr.execute(query)
        return cr.fetchone()[0]


def test_a_token_opens_its_user_once(db):
    token = login.issue(db, "owner@acme.test")
    assert login.TOKEN_RE.fullmatch(token)
    assert redeem(db, token) == 1
    assert redeem(db, token) is None


def test_only_a_hash_is_stored(db):
    token = login.issue(db, "owner@acme.test")
    stored = scalar(db, "SELECT token_hash FROM saas_login_token")
    assert token not in stored and len(stored) == 64


def test_an_expired_token_is_refused_and_cleaned_up_later(db):
    token = login.issue(db, "owner@acme.test", seconds=1)
    with db.cursor() as cr:
        cr.execute("UPDATE saas_login_token SET expires_at = expires_at - interval '1 hour'")
    db.commit()
    assert redeem(db, token) is None
    login.issue(db, "owner@acme.test")
    assert scalar(db, "SELECT count(*) FROM saas_login_token") == 1


def test_a_token_of_another_database_is_refused(db, schema_db):
    other = schema_db(SCHEMA, "saas_pytest_login")
    login.ensure_table(other.cursor())
    other.commit()
    token = login.issue(db, "owner@acme.test")
    assert redeem(other, token) is None
    assert redeem(db, token) == 1


def test_a_database_without_the_table_refuses_every_token(db):
    assert redeem(db, "A" * 43) is None


@pytest.mark.parametrize("token", ["", "short", "A" * 44, "A" * 42 + "!", None, 12])
def test_malformed_tokens_are_refused(db, token):
    login.issue(db, "owner@acme.test")
    assert redeem(db, token) is None


def test_a_user_deactivated_after_the_issue_is_refused(db):
    token = login.issue(db, "owner@acme.test")
    with db.cursor() as cr:
        cr.execute("UPDATE res_users SET active = false")
    db.commit()
    assert redeem(db, token) is None


@pytest.mark.parametrize("user", ["former@acme.test", "nobody@acme.test"])
def test_no_token_for_an_inactive_or_unknown_user(db, user):
    with pytest.raises(ValueError):
        login.issue(db, user)


@pytest.mark.parametrize("seconds", [0, -1, 3601, 1.5, "60"])
def test_lifetimes_are_bounded(db, seconds):
    with pytest.raises(ValueError):
        login.issue(db, "owner@acme.test", seconds)
