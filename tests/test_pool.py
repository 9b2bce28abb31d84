import os

import psycopg2

from odoo.http import db_list
from odoo.tests import tagged
from odoo.tools import config

from ..engine import pg
from ..models.saas_pool_database import POOL_DATABASE_RE
from .common import ServedClonesCase


@tagged("post_install", "-at_install")
class TestStandbyPool(ServedClonesCase):
    """Standby databases of a template: made hidden, claimed by a rename, refilled, and
    rebuilt when the template gets a new revision."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Standbys serve the plans of their template's currency (see saas_instance_pool).
        cls.env.ref("saas_manager.plan_starter").currency_id = cls.env.ref("base.USD")

    def setUp(self):
        super().setUp()
        self.deployment = self.template._saas_deployment(self.template.server_id)
        self.addCleanup(self.drop_standbys)

    def drop_standbys(self):
        prefix = "saas_pool_%d_" % self.deployment.id
        self.drop_databases([name for name in self.databases() if name.startswith(prefix)])

    def fill(self, size):
        self.template.pool_size = size
        self.run_operations()
        return self.template.pool_ids.filtered(lambda m: m.state == "ready")

    def query(self, database, sql):
        conn = psycopg2.connect(dbname=database, **self.pg_params)
        try:
            with conn.cursor() as cr:
                cr.execute(sql)
                return cr.fetchall()
        finally:
            conn.close()

    def pooled_instance(self):
        instance = self.new_instance()
        self.assertTrue(instance._provision({"pool": True}), self.op_error(instance))
        return instance, self.last_operation(instance, "provision").step_ids.mapped("name")

    def test_standbys_are_hidden_sanitized_and_never_served_under_their_name(self):
        members = self.fill(2)
        self.assertEqual(len(members), 2)
        with pg.maintenance(self.pg_params) as conn:
            for member in members:
                self.assertTrue(POOL_DATABASE_RE.fullmatch(member.database_name))
                self.assertTrue(pg.is_template(conn, member.database_name))
        users = self.query(members[0].database_name,
                           "SELECT login FROM res_users WHERE password IS NOT NULL")
        self.assertEqual(users, [], "a standby keeps no password")
        self.assertEqual(members.mapped("revision"), [self.deployment.revision] * 2)
        self.assertEqual(members.mapped("currency_code"), ["USD", "USD"])
        for member in members:
            self.assertEqual(db_list(force=True, host=member.database_name), [])
            response = self.url_open("/web/login", headers={"Host": member.database_name},
                                     allow_redirects=False)
            self.assertNotEqual(response.status_code, 200)
            self.assertNotIn('name="login"', response.text)

    def test_a_claim_renames_a_standby_into_place_and_the_pool_is_refilled(self):
        standby = self.fill(1)
        name = standby.database_name
        with open(os.path.join(config.filestore(name), "marker")) as handle:
            self.assertEqual(handle.read(), "template file")
        instance, steps = self.pooled_instance()
        self.assertEqual(steps, ["claim", "proxy"])
        databases = self.databases()
        self.assertNotIn(name, databases)
        self.assertIn(instance.database_name, databases)
        self.assertFalse(os.path.exists(config.filestore(name)))
        self.assertTrue(os.path.exists(os.path.join(config.filestore(instance.database_name),
                                                    "marker")))
        with pg.maintenance(self.pg_params) as conn:
            self.assertFalse(pg.is_template(conn, instance.database_name))
            self.assertEqual(pg.comment(conn, instance.database_name), instance._owner_marker())
        self.assertEqual(instance.owned_database, instance.database_name)
        self.assertEqual(instance.admin_login, self.customer.email)
        self.assertEqual(self.query(instance.database_name,
                                    "SELECT name FROM res_company ORDER BY id LIMIT 1"),
                         [(self.customer.name,)])
        self.assertEqual(self.query(instance.database_name, "SELECT value FROM "
                                    "ir_config_parameter WHERE key = 'web.base.url'"),
                         [(instance.url,)])
        self.assertFalse(self.template.pool_ids)
        self.assertEqual(self.last_operation(self.template, "pool_fill").state, "queued")
        self.run_operations()
        self.assertEqual(len(self.template.pool_ids.filtered(lambda m: m.state == "ready")), 1)
        self.assertNotEqual(self.template.pool_ids.database_name, name)
        response = self.url_open("/web/login", headers={"Host": instance.host})
        self.assertEqual(response.status_code, 200)

    def test_a_relock_rebuilds_the_pool_and_an_old_standby_is_never_handed_out(self):
        old = self.fill(1)
        old_name, old_revision = old.database_name, old.revision
        self.template.action_unlock()
        self.template.action_lock()
        self.assertEqual(self.deployment.revision, old_revision + 1)
        instance, steps = self.pooled_instance()
        self.assertEqual(steps[0], "clone", "the old revision's standby was not claimed")
        self.assertEqual(instance.template_revision, old_revision + 1)
        self.run_operations()
        self.assertNotIn(old_name, self.databases())
        fresh = self.template.pool_ids
        self.assertEqual(fresh.mapped("revision"), [old_revision + 1])
        self.assertEqual(fresh.state, "ready")

    def test_a_standby_of_another_currency_is_not_claimed(self):
        self.fill(1)
        self.env.ref("saas_manager.plan_starter").currency_id = self.env.ref("base.EUR")
        _instance, steps = self.pooled_instance()
        self.assertEqual(steps[0], "clone")
        self.assertEqual(self.template.pool_ids.state, "ready")

    def test_an_empty_pool_provisions_as_usual(self):
        self.assertFalse(self.fill(0))
        instance, steps = self.pooled_instance()
        self.assertEqual(steps, ["clone", "filestore", "sanitize", "customize", "proxy"])
        self.assertEqual(instance.state, "active")

    def test_what_a_killed_fill_or_claim_left_is_removed_by_the_next_fill(self):
        member = self.fill(1)
        name = member.database_name
        loser = self.new_instance()
        member.write({"state": "claimed", "instance_id": loser.id})  # its claim died
        self.template.pool_size = 1
        self.env["saas.operation"]._queue(self.template, "pool_fill", wake=False)
        self.run_operations()
        self.assertNotIn(name, self.databases())
        self.assertFalse(os.path.exists(config.filestore(name)))
        fresh = self.template.pool_ids
        self.assertEqual((len(fresh), fresh.state), (1, "ready"))
