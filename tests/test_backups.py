import hashlib
import os
import uuid
from datetime import timedelta

import psycopg2

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import config, mute_logger

from ..engine import pg
from .common import LiveInstanceCase


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@tagged("post_install", "-at_install")
class TestBackupRecords(LiveInstanceCase):
    """saas.backup: one record per verified backup, of an instance or a template."""

    def assertRecordsItsFiles(self, record):
        for path, size, digest in ((record.dump_path, record.dump_size, record.dump_sha256),
                                   (record.filestore_path, record.filestore_size,
                                    record.filestore_sha256)):
            self.assertTrue(path.startswith(self.backup_dir + os.sep), path)
            self.assertEqual(os.path.getsize(path), size)
            self.assertEqual(sha256_of(path), digest)
        self.assertIn(record.stamp.strftime("%Y%m%dT%H%M%SZ"), record.dump_path)
        self.assertTrue(record.verified_at)

    def flags(self, name):
        with pg.maintenance(self.pg_params) as conn:
            return pg.connections_allowed(conn, name), pg.is_template(conn, name)

    def test_backup_now_of_an_active_and_of_a_suspended_instance(self):
        instance = self.make_live_instance("nowbackup")
        made = instance._saas_backup_now("manual")
        self.assertEqual((made.kind, made.source, made.instance_id, made.database_name),
                         ("manual", "instance", instance, instance.database_name))
        self.assertRecordsItsFiles(made)
        self.assertEqual(made.expires_on, made.stamp.date() + timedelta(days=30))
        self.assertEqual(self.flags(instance.database_name), (True, False), "still served")

        instance._suspend("manual")
        self.assertEqual(instance.state, "suspended")
        self.env["ir.config_parameter"].set_param("saas.backup_before_operation_retention_days",
                                                  "0")
        second = instance._saas_backup_now("before_operation")
        self.assertRecordsItsFiles(second)
        self.assertFalse(second.expires_on, "0 days: kept for good")
        self.assertNotEqual(second.dump_path, made.dump_path)
        self.assertEqual(self.flags(instance.database_name), (False, False),
                         "suspended as before: refuses connections, not a template")
        self.assertEqual(instance.backup_count, 2)
        self.assertFalse(instance.final_backup_id, "no final backup before a termination")
        action = instance.action_view_backups()
        self.assertEqual(self.env["saas.backup"].search(action["domain"]), made | second)

    def test_a_failed_backup_gives_the_database_its_flags_back_and_records_nothing(self):
        instance = self.make_live_instance("failedbackup")
        instance._suspend("manual")
        self.patch(config, "options", {**config.options, "saas_backup_dir": "/proc/nowhere"})
        with self.assertRaisesText(Exception, "nowhere"):
            instance._saas_backup_now("manual")
        self.assertEqual(self.flags(instance.database_name), (False, False))
        self.assertFalse(self.env["saas.backup"].search([("instance_id", "=", instance.id)]))

    def test_backups_are_read_by_managers_only_and_written_by_nobody(self):
        instance = self.make_live_instance("aclbackup")
        made = instance._saas_backup_now("manual")
        self.assertEqual(made.with_user(self.saas_manager).read(["dump_path"])[0]["dump_path"],
                         made.dump_path)
        self.assertEqual(instance.with_user(self.saas_manager).backup_count, 1)
        portal = new_test_user(self.env, "backup_portal", "base.group_portal")
        for user in (self.saas_user, portal):
            with self.assertRaises(AccessError):
                made.with_user(user).read(["dump_path"])
        for user in (self.saas_manager, self.saas_admin):
            with self.assertRaises(AccessError):
                made.with_user(user).write({"dump_path": "/tmp/elsewhere"})
            with self.assertRaises(AccessError):
                made.with_user(user).unlink()
            with self.assertRaises(AccessError):
                self.env["saas.backup"].with_user(user).create({
                    "source": "instance", "instance_id": instance.id, "kind": "manual",
                    "database_name": "x", "stamp": made.stamp, "dump_path": "/x",
                    "filestore_path": "/y"})
        self.assertTrue(all(made._fields[name].readonly for name in
                            made._saas_protected_fields()))
        self.assertGreaterEqual(made._saas_protected_fields(), {
            "instance_id", "template_id", "kind", "dump_path", "filestore_path", "dump_sha256",
            "filestore_sha256", "dump_size", "filestore_size", "stamp", "expires_on"})

    def test_an_instance_with_backups_cannot_be_deleted(self):
        instance = self.make_live_instance("keepme")
        instance._saas_backup_now("manual")
        # Deletable by its state and gone database: the backups refuse.
        instance.sudo().write({"state": "terminated", "owned_database": False})
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError), \
                self.env.cr.savepoint():
            instance.unlink()
            self.env.flush_all()

    def test_instance_backups_follow_the_instance_company(self):
        other = self.env["res.company"].create({"name": "Other SaaS Co"})
        instance = self.make_live_instance("othercompany", company_id=other.id)
        made = instance._saas_backup_now("manual")
        self.assertNotIn(other, self.saas_manager.company_ids)
        self.assertFalse(self.env["saas.backup"].with_user(self.saas_manager).search(
            [("id", "=", made.id)]))

    def test_one_owner_per_backup(self):
        instance = self.make_live_instance("twoowners")
        made = instance._saas_backup_now("manual")
        template = self.env.ref("saas_manager.template_blank")
        for values in ({"template_id": template.id}, {"instance_id": False},
                       {"source": "template"}):
            with self.subTest(values=values), mute_logger("odoo.sql_db"), \
                    self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
                made.write(values)
                self.env.flush_all()

    # -- templates ---------------------------------------------------------------------
    def make_template_database(self):
        name = "saas_tpl_bk_%s" % uuid.uuid4().hex[:8]
        self.create_small_database(name, "setting", "configured")
        os.makedirs(config.filestore(name))
        with open(os.path.join(config.filestore(name), "logo"), "wb") as handle:
            handle.write(b"template file")
        return name

    def test_template_delete_keeps_a_backup_record_that_outlives_the_template(self):
        name = self.make_template_database()
        template = self.env["saas.template"].create({
            "name": "Doomed", "code": name[-8:], "database_name": name,
            "state": "configuring", "database_owned": True})
        wizard = self.env["saas.template.delete"].create({"template_id": template.id,
                                                          "drop_database": True})
        action = wizard.action_confirm()
        self.assertFalse(template.exists())
        with pg.maintenance(self.pg_params) as conn:
            self.assertFalse(pg.exists(conn, name))
        self.assertFalse(os.path.exists(config.filestore(name)))
        made = self.env["saas.backup"].search([("database_name", "=", name)])
        self.assertEqual(len(made), 1)
        self.assertEqual((made.kind, made.source, made.template_id, made.instance_id),
                         ("final", "template", self.env["saas.template"],
                          self.env["saas.instance"]))
        self.assertRecordsItsFiles(made)
        self.assertEqual(made.file_count, 1)
        self.assertIn(made.display_name, action["params"]["message"])
        self.assertEqual((action["params"]["next"]["res_model"],
                          action["params"]["next"]["res_id"]), ("saas.backup", made.id))

    def test_template_backup_count_and_locked_template_flags_kept_on_failure(self):
        name = self.make_template_database()
        template = self.env["saas.template"].create({
            "name": "Locked", "code": name[-8:], "database_name": name,
            "state": "configuring", "database_owned": True})
        template._saas_lock()
        self.assertEqual(self.flags(name), (False, True))
        self.patch(config, "options", {**config.options, "saas_backup_dir": "/proc/nowhere"})
        with self.assertRaisesText(Exception, "nowhere"):
            template._backup_and_drop()
        self.assertEqual(self.flags(name), (False, True), "still locked as it was")
        self.assertEqual(template.backup_count, 0)
