import os

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from ..engine import pg
from .common import LiveInstanceCase


@tagged("post_install", "-at_install")
class TestOrphans(LiveInstanceCase):
    """Orphan databases: listed from the server, adopted, or dropped after a backup."""

    def setUp(self):
        super().setUp()
        self.server = self.env.ref("saas_manager.server_local")
        self.Orphan = self.env["saas.orphan.database"].with_user(self.saas_admin)

    def make_orphan(self, subdomain):
        """A live instance whose record is then deleted: its database stays, marked."""
        instance = self.make_live_instance(subdomain)
        old_id, name = instance.id, instance.database_name
        instance.sudo().write({"state": "draft", "owned_database": False})
        instance.sudo().unlink()
        return old_id, name

    def scan(self):
        return self.Orphan._saas_scan(self.server.with_user(self.saas_admin))

    def line(self, name):
        return self.scan().filtered(lambda line: line.database_name == name)

    def comment(self, name):
        with pg.maintenance(self.pg_params) as conn:
            return pg.comment(conn, name)

    def test_deleted_or_terminated_instance_leaves_an_orphan(self):
        old_id, name = self.make_orphan("orphan-gone")
        ended = self.make_live_instance("orphan-ended")
        ended.sudo().write({"state": "terminated", "owned_database": False})
        live = self.make_live_instance("orphan-live")
        lines = self.scan()
        line = lines.filtered(lambda line: line.database_name == name)
        self.assertEqual(line.marked_instance, old_id)
        self.assertRegex(line.reason, "no longer exists")
        self.assertGreater(line.size_mb, 1)
        self.assertEqual(line.subdomain, "orphan-gone")
        self.assertIn(ended.database_name, lines.mapped("database_name"))
        self.assertRegex(lines.filtered(
            lambda line: line.database_name == ended.database_name).reason, "Terminated")
        self.assertNotIn(live.database_name, lines.mapped("database_name"))
        action = self.server.with_user(self.saas_admin).action_find_orphan_databases()
        self.assertEqual(action["res_model"], "saas.orphan.database")
        # A new scan: this user's earlier lines are replaced.
        self.assertFalse(line.exists())
        self.assertIn(name, self.Orphan.search(action["domain"]).mapped("database_name"))

    def test_other_managers_databases_are_never_listed(self):
        dbname = self.env.cr.dbname
        markers = {"foreign-a.saas.test": "saas_manager instance 1 of another_manager",
                   "foreign-b.saas.test": "saas_manager instance 1 of %s_copy" % dbname,
                   "foreign-c.saas.test": "saas_manager instance x of %s" % dbname}
        for name, marker in markers.items():
            self.create_small_database(name, "note", "someone else's")
            with pg.maintenance(self.pg_params) as conn:
                pg.set_comment(conn, name, marker)
        listed = self.scan().mapped("database_name")
        self.assertFalse(set(markers) & set(listed))

    def test_adopt(self):
        old_id, name = self.make_orphan("adoptee")
        line = self.line(name)
        line.write({"partner_id": self.customer.id, "plan_id": self.plan.id,
                    "template_id": self.template.id, "subdomain": "someone-else"})
        with self.assertRaisesText(UserError, "served from the database someone-else.saas.test, "
                                              "not adoptee.saas.test.*Use the subdomain adoptee"):
            line.action_adopt()
        line.subdomain = "adoptee"
        action = line.action_adopt()
        instance = self.env["saas.instance"].browse(action["res_id"])
        self.assertNotEqual(instance.id, old_id)
        self.assertEqual((instance.state, instance.owned_database, instance.database_name),
                         ("active", name, name))
        self.assertEqual(instance.server_id, self.server)
        self.assertEqual(self.comment(name), instance._owner_marker())
        self.assertNotIn(name, self.scan().mapped("database_name"))
        self.assertTrue(self.database_exists(instance))

    def test_drop_after_backup(self):
        _old_id, name = self.make_orphan("dropped")
        line = self.line(name)
        action = line.action_drop_after_backup()
        with pg.maintenance(self.pg_params) as conn:
            self.assertFalse(pg.exists(conn, name))
        files = sorted(os.listdir(self.backup_dir))
        self.assertEqual(len(files), 2, files)
        self.assertTrue(all(file.startswith(name + "-") for file in files))
        for file in files:
            self.assertIn(os.path.join(self.backup_dir, file), action["params"]["message"])
        self.assertNotIn(name, self.scan().mapped("database_name"))

    def test_a_backup_that_fails_drops_nothing(self):
        name = "emptyorphan.saas.test"
        self.addCleanup(self.drop_database, name)
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute('CREATE DATABASE "emptyorphan.saas.test" TEMPLATE template0')
            # No table at all: its dump has nothing to read back, so it is not verified.
            pg.set_comment(conn, name, "saas_manager instance 999999 of %s"
                           % self.env.cr.dbname)
        with self.assertRaisesText(UserError, "was not dropped"):
            self.line(name).action_drop_after_backup()
        with pg.maintenance(self.pg_params) as conn:
            self.assertTrue(pg.exists(conn, name), "nothing dropped without a verified backup")
            self.assertTrue(pg.connections_allowed(conn, name), "and served as before")

    def test_changed_marker_or_new_owner_is_refused(self):
        _old_id, name = self.make_orphan("rechecked")
        line = self.line(name)
        with pg.maintenance(self.pg_params) as conn:
            pg.set_comment(conn, name, "saas_manager instance 999999 of %s" % self.env.cr.dbname)
        with self.assertRaisesText(UserError, "no longer an orphan"):
            line.action_drop_after_backup()
        line = self.line(name)
        owner = self.make_instance("rechecked-owner")
        owner.sudo().owned_database = name
        with self.assertRaisesText(UserError, "no longer an orphan"):
            line.action_drop_after_backup()
        with pg.maintenance(self.pg_params) as conn:
            self.assertTrue(pg.exists(conn, name))
        self.assertFalse(os.listdir(self.backup_dir))

    def test_non_admins_are_refused(self):
        _old_id, name = self.make_orphan("refused")
        line = self.line(name)
        for user in (self.saas_manager, self.saas_user):
            with self.assertRaises(AccessError):
                self.server.with_user(user).action_find_orphan_databases()
            with self.assertRaises(AccessError):
                line.with_user(user).action_drop_after_backup()
            with self.assertRaises(AccessError):
                line.with_user(user).action_adopt()
        with pg.maintenance(self.pg_params) as conn:
            self.assertTrue(pg.exists(conn, name))
