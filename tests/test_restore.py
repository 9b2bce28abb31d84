"""Restores on real clones served by a real Odoo: in place, as a new instance, imported
from an Odoo zip, Odoo's own restore of our zip, and copies kept off-site."""

import base64
import os
import uuid
import zipfile

import boto3
import psycopg2
import requests

from odoo.exceptions import AccessError
from odoo.service import db as odoo_db
from odoo.tests import new_test_user, tagged
from odoo.tools import config, mute_logger

from ..engine import backup, odoo_zip
from .common import ServedClonesCase

#: Tables a sanitized copy changes by design (new identity and URL, secrets removed,
#: mail servers off; a staging copy adds Odoo's catch-all mail server).
SANITIZED_TABLES = {"public.ir_config_parameter", "public.ir_mail_server",
                    "public.bus_bus", "public.bus_presence", "public.res_users_apikeys",
                    "public.res_device_log", "public.mail_mail"}
S3_ENDPOINT = os.environ.get("SAAS_TEST_S3_ENDPOINT", "")


def file_tree(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    files = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, folder)] = handle.read()
    return files


@tagged("post_install", "-at_install")
class TestRestores(ServedClonesCase):

    # -- helpers -------------------------------------------------------------------------
    def live_instance(self, **values):
        instance = self.new_instance(**values)
        instance.action_provision()
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        with open(os.path.join(config.filestore(instance.database_name), "customer-file"),
                  "wb") as handle:
            handle.write(b"customer data %s" % instance.subdomain.encode())
        self.write_note(instance, "before the backup")
        return instance

    def connect(self, name):
        return psycopg2.connect(dbname=name, **self.pg_params)

    def sql(self, name, query, args=()):
        conn = self.connect(name)
        try:
            with conn, conn.cursor() as cr:
                cr.execute(query, args)
                return cr.fetchall() if cr.description else None
        finally:
            conn.close()

    def write_note(self, instance, text):
        self.sql(instance.database_name,
                 "UPDATE res_partner SET comment = %s WHERE id = 1", (text,))

    def note(self, name):
        return self.sql(name, "SELECT comment FROM res_partner WHERE id = 1")[0][0]

    def counts(self, name):
        conn = self.connect(name)
        try:
            return backup.row_counts(conn)
        finally:
            conn.close()

    def param(self, name, key):
        rows = self.sql(name, "SELECT value FROM ir_config_parameter WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def back_up(self, instance):
        """"Back Up Now", run by the backup runner: the new backup."""
        instance.action_backup_now()
        self.env["saas.operation"]._cron_run("backups")
        made = instance.backup_ids[:1]
        self.assertTrue(made.verified_at, self.op_error(instance))
        return made

    def login_page(self, host):
        return requests.get("http://127.0.0.1:%s/web/login" % config["http_port"],
                            headers={"Host": host}, allow_redirects=False, timeout=60)

    def assertServed(self, host):
        response = self.login_page(host)
        self.assertEqual(response.status_code, 200, response.text[:300])
        self.assertIn('name="login"', response.text)

    def assertSameData(self, source_counts, name, source_files, ignore=()):
        counts = self.counts(name)
        self.assertEqual({t: c for t, c in counts.items() if t not in ignore},
                         {t: c for t, c in source_counts.items() if t not in ignore})
        self.assertEqual(file_tree(config.filestore(name)), source_files)

    # -- in place ------------------------------------------------------------------------
    def test_restore_in_place_brings_the_backup_back_and_keeps_a_safety_backup(self):
        instance = self.live_instance()
        name = instance.database_name
        made = self.back_up(instance)
        counts, files = self.counts(name), file_tree(config.filestore(name))
        self.assertEqual(made.row_counts, counts, "recorded in the dump's own snapshot")
        self.assertEqual(made.modules.get("base"), self.sql(
            name, "SELECT latest_version FROM ir_module_module WHERE name = 'base'")[0][0])
        # The customer goes on working: a note, a new partner, a file.
        self.write_note(instance, "after the backup")
        self.sql(name, "INSERT INTO res_partner (name, active, type) VALUES ('New', true, "
                       "'contact')")
        with open(os.path.join(config.filestore(name), "later-file"), "wb") as handle:
            handle.write(b"later")

        wizard = self.env["saas.backup.restore"].create({"backup_id": made.id,
                                                         "confirmation": "nope"})
        with self.assertRaisesRegex(Exception, "to confirm"):
            wizard.action_confirm()
        wizard.confirmation = instance.subdomain
        wizard.action_confirm()
        self.run_operations()
        operation = self.last_operation(instance, "restore")
        self.assertEqual(operation.state, "done", operation.error)
        self.assertEqual(operation.step_ids.mapped("name"),
                         ["fetch", "restore", "safety backup", "drop replaced"])
        self.assertEqual(self.note(name), "before the backup")
        self.assertSameData(counts, name, files)
        self.assertEqual(instance.state, "active")
        self.assertServed(instance.host)
        safety = instance.backup_ids.filtered(lambda b: b.kind == "before_operation")
        self.assertEqual(safety.operation_id, operation)
        self.assertEqual(safety.row_counts["public.res_partner"],
                         counts["public.res_partner"] + 1, "the state until the swap")
        self.assertEqual(safety.file_count, len(files) + 1, "with the later file")
        leftovers = {db for db in self.databases() if db.startswith(("saas_rst_", "saas_old_"))}
        self.assertFalse(leftovers)

    def test_a_restore_killed_after_its_swap_is_finished_by_the_next_attempt(self):
        instance = self.live_instance()
        name = instance.database_name
        made = self.back_up(instance)
        self.write_note(instance, "until the swap")
        staging, replaced = ("saas_rst_%d_%s" % (instance.id, uuid.uuid4().hex[:8]),
                             "saas_old_%d_%s" % (instance.id, uuid.uuid4().hex[:8]))
        self.addCleanup(self.drop_databases, [staging, replaced])
        # The worker got through the swap, then died: no safety backup, the old copy left.
        backup.replace(self.pg_params, made._saas_engine_backup(), name,
                       config.filestore(name), staging, replaced,
                       comment=instance._owner_marker(), keep_old=True)
        operation = self.env["saas.operation"].create({
            "instance_id": instance.id, "kind": "restore", "state": "running",
            "attempt": 1, "max_attempts": 3,
            "params": {"backup_id": made.id, "staging": staging, "replaced": replaced}})
        with mute_logger("odoo.addons.saas_manager.models.saas_operation"):
            self.run_operations()
        self.assertEqual(operation.state, "done", operation.error)
        self.assertEqual(operation.step_ids.filtered(lambda s: s.attempt == 2).mapped("name"),
                         ["interrupted", "recover", "safety backup", "drop replaced"])
        self.assertEqual(self.note(name), "before the backup")
        safety = instance.backup_ids.filtered(lambda b: b.kind == "before_operation")
        self.assertEqual(len(safety), 1, "what was written until the swap is kept")
        self.assertNotIn(replaced, self.databases())
        self.assertServed(instance.host)

    def test_backup_downloads_are_for_saas_managers(self):
        instance = self.live_instance()
        made = self.back_up(instance)
        self.patch(config, "options", {**config.options, "dbfilter": self.suite_dbfilter})
        manager = new_test_user(self.env, "dl_mgr", "saas_manager.group_saas_manager",
                                password="dl_mgr-pass-1")
        user = new_test_user(self.env, "dl_user", "saas_manager.group_saas_user",
                             password="dl_user-pass-1")
        url = "/saas/backup/%d/download/%%s" % made.id
        self.authenticate("dl_user", "dl_user-pass-1")
        with mute_logger("odoo.http"):
            self.assertIn(self.url_open(url % "dump").status_code, (403, 404))
        for action in ("action_open_restore", "action_drill", "action_download"):
            with self.subTest(action), self.assertRaises(AccessError):
                getattr(made.with_user(user), action)()
        self.authenticate(manager.login, "dl_mgr-pass-1")
        response = self.url_open(url % "dump")
        self.assertEqual(response.status_code, 200)
        with open(made.dump_path, "rb") as handle:
            self.assertEqual(response.content, handle.read())
        response = self.url_open(url % "odoo")
        self.assertEqual(response.headers["Content-Type"], "application/zip")
        zipped = os.path.join(self.backup_dir, "downloaded.zip")
        with open(zipped, "wb") as handle:
            handle.write(response.content)
        self.addCleanup(os.remove, zipped)
        self.assertEqual(odoo_zip.inspect(zipped).manifest["db_name"], instance.database_name)
        self.assertEqual(self.url_open(url % "nonsense").status_code, 404)
        self.assertIn("downloaded (odoo) by", instance.message_ids[0].body)
        self.assertFalse([name for name in os.listdir(self.backup_dir)
                          if name.startswith(".download-")], "the zip is gone after sending")

    def test_restore_of_a_corrupted_backup_fails_and_leaves_the_instance_serving(self):
        instance = self.live_instance()
        made = self.back_up(instance)
        self.write_note(instance, "current")
        with open(made.filestore_path, "r+b") as handle:
            handle.seek(int(made.filestore_size) // 2)
            handle.write(b"\0corrupt\0")
        with mute_logger("odoo.addons.saas_manager.models.saas_operation"):
            instance._saas_restore_in_place(made)
            self.run_operations()
        operation = self.last_operation(instance, "restore")
        self.assertEqual(operation.state, "failed")
        self.assertRegex(operation.error, "checksum|does not read back|not usable")
        self.assertEqual(self.note(instance.database_name), "current", "nothing replaced")
        self.assertServed(instance.host)
        self.assertFalse({db for db in self.databases() if db.startswith("saas_rst_")})

    # -- as a new instance -----------------------------------------------------------------
    def test_restore_as_a_new_staging_instance_is_a_sanitized_neutralized_copy(self):
        source = self.live_instance()
        made = self.back_up(source)
        counts, files = self.counts(source.database_name), \
            file_tree(config.filestore(source.database_name))
        wizard = self.env["saas.backup.restore"].create({"backup_id": made.id, "mode": "new"})
        wizard._onchange_mode()
        wizard.subdomain = "s%s" % uuid.uuid4().hex[:8]
        action = wizard.action_confirm()
        copy = self.env["saas.instance"].browse(action["res_id"])
        self.addCleanup(self.drop_databases, [copy.database_name])
        self.run_operations()
        self.assertEqual(copy.state, "active", self.op_error(copy))
        self.assertEqual(self.last_operation(copy, "provision").step_ids.mapped("name"),
                         ["restore", "sanitize_copy", "proxy"])
        self.assertSameData(counts, copy.database_name, files,
                            ignore=SANITIZED_TABLES | {"public.ir_cron"})
        for key in ("database.uuid", "database.secret"):
            self.assertNotEqual(self.param(copy.database_name, key),
                                self.param(source.database_name, key), key)
        self.assertEqual(self.param(copy.database_name, "web.base.url"), copy.url)
        self.assertEqual(self.param(copy.database_name, "database.is_neutralized"), "true")
        self.assertEqual(self.sql(copy.database_name,
                                  "SELECT count(*) FROM ir_cron WHERE active")[0][0], 1,
                         "only Odoo's autovacuum stays on")
        self.assertEqual(self.sql(copy.database_name,
                                  "SELECT smtp_host FROM ir_mail_server WHERE active"),
                         [("invalid",)], "outgoing mail caught")
        self.assertEqual(copy.admin_login, source.admin_login)
        self.assertServed(copy.host)
        self.assertServed(source.host)

    def test_restore_as_a_recovery_instance_keeps_crons_on(self):
        source = self.live_instance()
        made = self.back_up(source)
        copy = self.env["saas.instance"]._saas_restore_as_new(made, {
            "name": "Recovered", "subdomain": "r%s" % uuid.uuid4().hex[:8],
            "partner_id": source.partner_id.id, "plan_id": source.plan_id.id,
            "template_id": source.template_id.id}, staging=False)
        self.addCleanup(self.drop_databases, [copy.database_name])
        self.run_operations()
        self.assertEqual(copy.state, "active", self.op_error(copy))
        self.assertEqual(self.counts(copy.database_name)["public.ir_cron"],
                         self.counts(source.database_name)["public.ir_cron"])
        self.assertFalse(self.param(copy.database_name, "database.is_neutralized"))
        self.assertEqual(self.note(copy.database_name), "before the backup")

    # -- Odoo's zip ------------------------------------------------------------------------
    def export(self, made):
        path = os.path.join(self.backup_dir, "export-%s.zip" % uuid.uuid4().hex[:8])
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        odoo_zip.export_zip(self.pg_params, made._saas_local_copy(), path,
                            made._saas_manifest())
        return path

    def test_our_odoo_zip_restores_through_odoo_own_database_restore(self):
        source = self.live_instance()
        made = self.back_up(source)
        path = self.export(made)
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        self.assertIn("dump.sql", names)
        self.assertIn("manifest.json", names)
        self.assertIn("filestore/customer-file", names)
        target = "o%s.saas.test" % uuid.uuid4().hex[:8]
        self.addCleanup(self.drop_databases, [target])
        self.patch(config, "options", {**config.options, "list_db": True})
        odoo_db.restore_db(target, path, copy=True)
        self.assertEqual(self.counts(target), made.row_counts)
        self.assertEqual(file_tree(config.filestore(target)),
                         file_tree(config.filestore(source.database_name)))
        self.assertServed(target)

    def test_import_of_an_odoo_zip_makes_a_sanitized_instance(self):
        source = self.live_instance()
        made = self.back_up(source)
        counts, files = made.row_counts, file_tree(config.filestore(source.database_name))
        with open(self.export(made), "rb") as handle:
            upload = base64.b64encode(handle.read())
        subdomain = "i%s" % uuid.uuid4().hex[:8]
        wizard = self.env["saas.instance.import"].create({
            "backup_file": upload, "backup_filename": "acme.zip", "name": "Imported",
            "subdomain": subdomain, "partner_id": self.customer.id,
            "plan_id": self.env.ref("saas_manager.plan_starter").id,
            "template_id": self.template.id})
        action = wizard.action_confirm()
        imported = self.env["saas.instance"].browse(action["res_id"])
        self.addCleanup(self.drop_databases, [imported.database_name])
        self.run_operations()
        self.assertEqual(imported.state, "active", self.op_error(imported))
        self.assertSameData(counts, imported.database_name, files, ignore=SANITIZED_TABLES)
        self.assertNotEqual(self.param(imported.database_name, "database.secret"),
                            self.param(source.database_name, "database.secret"))
        self.assertEqual(imported.admin_login, source.admin_login)
        self.assertFalse(os.listdir(os.path.join(self.backup_dir, "imports")),
                         "the uploaded zip is removed once imported")
        self.assertServed(imported.host)

    def test_import_refuses_what_is_not_an_odoo_backup_and_keeps_nothing(self):
        bad = {}
        for label, members in (("not a zip", None),
                               ("no dump", {"manifest.json": b"{}"}),
                               ("traversal", {"dump.sql": b"SELECT 1;",
                                              "filestore/../../evil": b"x"})):
            if members is None:
                bad[label] = b"plain text, not a zip"
                continue
            path = os.path.join(self.backup_dir, "bad.zip")
            with zipfile.ZipFile(path, "w") as archive:
                for member, data in members.items():
                    archive.writestr(member, data)
            with open(path, "rb") as handle:
                bad[label] = handle.read()
            os.remove(path)
        before = self.env["saas.instance"].search_count([])
        for label, data in bad.items():
            with self.subTest(label), self.assertRaisesRegex(Exception, "not an Odoo backup"):
                self.env["saas.instance.import"].create({
                    "backup_file": base64.b64encode(data), "name": "Bad",
                    "subdomain": "bad%s" % uuid.uuid4().hex[:6],
                    "partner_id": self.customer.id,
                    "plan_id": self.env.ref("saas_manager.plan_starter").id,
                    "template_id": self.template.id}).action_confirm()
        self.assertEqual(self.env["saas.instance"].search_count([]), before)
        imports = os.path.join(self.backup_dir, "imports")
        self.assertFalse(os.path.isdir(imports) and os.listdir(imports))

    # -- off-site ----------------------------------------------------------------------------
    def offsite(self):
        """A real S3-protocol server (started by ./dev test) and a fresh bucket on it."""
        if not S3_ENDPOINT:
            self.skipTest("SAAS_TEST_S3_ENDPOINT is not set: no S3 server for this run "
                          "(./dev test starts one)")
        bucket = "saas-test-%s" % uuid.uuid4().hex[:8]
        keys = {"aws_access_key_id": os.environ.get("SAAS_TEST_S3_ACCESS_KEY", "test"),
                "aws_secret_access_key": os.environ.get("SAAS_TEST_S3_SECRET_KEY", "test")}
        client = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1", **keys)
        client.create_bucket(Bucket=bucket)
        self.patch(config, "options", {
            **config.options, "saas_s3_endpoint": S3_ENDPOINT, "saas_s3_bucket": bucket,
            "saas_s3_prefix": "test", "saas_s3_access_key": keys["aws_access_key_id"],
            "saas_s3_secret_key": keys["aws_secret_access_key"]})
        return client, bucket

    def test_offsite_round_trip_and_a_restore_from_the_offsite_copy_only(self):
        client, bucket = self.offsite()
        settings = self.env["res.config.settings"].create({})
        self.assertTrue(settings.saas_offsite_configured)
        self.assertIn(bucket, settings.saas_offsite_target)
        source = self.live_instance()
        made = self.back_up(source)
        self.assertEqual(made.offsite_state, "copied", made.offsite_error)
        listed = {item["Key"]: item["Size"] for item in
                  client.list_objects_v2(Bucket=bucket)["Contents"]}
        self.assertEqual(listed, {made.offsite_dump_key: made.dump_size,
                                  made.offsite_filestore_key: made.filestore_size})
        self.assertTrue(made.offsite_dump_key.startswith("test/%s/" % source.database_name))
        # Local files past their hours are removed; the record says where they are.
        self.env["ir.config_parameter"].set_param("saas.backup_local_hours", "1")
        made.sudo().local_since = "2000-01-01 00:00:00"
        self.env["saas.backup"]._saas_expire_local()
        self.assertEqual(made.local_state, "removed")
        self.assertFalse(os.path.exists(made.dump_path))
        self.assertFalse(os.path.exists(made.filestore_path))
        copy = self.env["saas.instance"]._saas_restore_as_new(made, {
            "name": "From off-site", "subdomain": "f%s" % uuid.uuid4().hex[:8],
            "partner_id": source.partner_id.id, "plan_id": source.plan_id.id,
            "template_id": source.template_id.id}, staging=True)
        self.addCleanup(self.drop_databases, [copy.database_name])
        self.run_operations()
        self.assertEqual(copy.state, "active", self.op_error(copy))
        self.assertEqual(made.local_state, "present", "fetched back, checksums checked")
        self.assertSameData(made.row_counts, copy.database_name,
                            file_tree(config.filestore(source.database_name)),
                            ignore=SANITIZED_TABLES | {"public.ir_cron"})
        # Retention is mirrored off-site: a pruned backup leaves no object behind.
        made._saas_delete()
        self.assertNotIn("Contents", client.list_objects_v2(Bucket=bucket))

    def test_an_unreachable_object_store_keeps_the_backup_and_retries_the_copy(self):
        self.offsite()
        closed = "http://127.0.0.1:9"
        self.patch(config, "options", {**config.options, "saas_s3_endpoint": closed})
        instance = self.live_instance()
        with mute_logger("odoo.addons.saas_manager.models.saas_backup_offsite"):
            made = self.back_up(instance)
        self.assertEqual(self.last_operation(instance, "backup").state, "done")
        self.assertEqual((made.offsite_state, made.local_state), ("failed", "present"))
        self.assertIn("127.0.0.1:9", made.offsite_error)
        self.patch(config, "options", {**config.options, "saas_s3_endpoint": S3_ENDPOINT})
        self.assertEqual(self.env["saas.backup"]._saas_copy_pending(), 1)
        self.assertEqual(made.offsite_state, "copied")
