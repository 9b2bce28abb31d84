"""Fleet updates on real clones: releases of a small test addon (tests/addons) whose
version bump runs a migration, updated by campaigns through a child Odoo, checked
through the serving Odoo, and rolled back from the pre-update backup when they fail."""

import logging
import os
import shutil
import tempfile
import time
from contextlib import closing
from unittest.mock import patch

import psycopg2

import odoo
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from ..engine import backup, maintenance, odoo_process
from ..models import saas_instance_update
from .common import OPERATION_LOGGER, ServedClonesCase

ADDONS = os.path.join(os.path.dirname(__file__), "addons")
PROBE = "saas_fleet_probe"
APP = "saas_fleet_app"
UPDATE_LOGGER = "odoo.addons.saas_manager.models.saas_instance_update"
_logger = logging.getLogger(__name__)


@tagged("post_install", "-at_install")
class TestFleetUpdates(ServedClonesCase):
    """A template with the probe addon (version 1.0); each test "releases" a version of
    it into the server's addons path, then updates clones of the template."""

    template_modules = "base,%s" % PROBE

    @classmethod
    def setUpClass(cls):
        cls.addons_dir = tempfile.mkdtemp(prefix="saas_fleet_addons_")
        cls.addClassCleanup(shutil.rmtree, cls.addons_dir, True)
        cls.release(None)
        shutil.copytree(os.path.join(ADDONS, APP), os.path.join(cls.addons_dir, APP))
        cls.template_addons_path = "%s,%s" % (config["addons_path"], cls.addons_dir)
        super().setUpClass()
        # The child Odoo processes find the addons through the server's addons path, the
        # serving (test) Odoo through odoo.addons' own path.
        cls.startClassPatcher(patch.dict(config.options,
                                         {"addons_path": cls.template_addons_path}))
        odoo.addons.__path__.append(cls.addons_dir)
        cls.addClassCleanup(odoo.addons.__path__.remove, cls.addons_dir)

    @classmethod
    def prepare_template(cls):
        # As a build does: the template records the checksums of its code.
        with patch.dict(config.options, {"addons_path": cls.template_addons_path}):
            cls.env["saas.template"]._saas_store_checksums(cls.tpl_db)

    @classmethod
    def release(cls, version, migration=None):
        """The probe addon as shipped (``version`` None: 1.0), or a release ``18.0.<version>``
        whose migration is ``tests/addons/releases/<migration>.py``."""
        target = os.path.join(cls.addons_dir, PROBE)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(ADDONS, PROBE), target)
        if version:
            manifest = os.path.join(target, "__manifest__.py")
            with open(manifest, encoding="utf-8") as handle:
                text = handle.read().replace("18.0.1.0.0", "18.0.%s" % version)
            with open(manifest, "w", encoding="utf-8") as handle:
                handle.write(text)
            folder = os.path.join(target, "migrations", "18.0.%s" % version)
            os.makedirs(folder)
            shutil.copy(os.path.join(ADDONS, "releases", "%s.py" % migration),
                        os.path.join(folder, "post-migrate.py"))

    def setUp(self):
        super().setUp()
        self.release(None)
        self.patch(saas_instance_update, "UPDATE_POLL_SECONDS", 1)

    # -- helpers -------------------------------------------------------------------------
    def instances(self, count):
        made = self.env["saas.instance"]
        for _index in range(count):
            instance = self.new_instance()
            self.assertTrue(instance._provision(), instance.operation_error)
            made |= instance
        return made

    def campaign(self, instances, **values):
        return self.env["saas.update.campaign"].create({
            "name": "Release", "scope": "selection", "instance_ids": [(6, 0, instances.ids)],
            "canary_count": 1, "concurrency": 2, **values})

    def drive(self, campaign, timeout=240):
        """Advance the campaign and run its operations as the crons would, until it ends."""
        campaign.action_start()
        deadline = time.monotonic() + timeout
        while campaign.state == "running" and time.monotonic() < deadline:
            campaign._saas_advance()
            self.run_operations()
            campaign.invalidate_recordset()
            time.sleep(0.3)
        self.assertNotEqual(campaign.state, "running", "the campaign did not end in time")
        return campaign

    def backups(self, instance, kind):
        return self.env["saas.backup"].search([("instance_id", "=", instance.id),
                                               ("kind", "=", kind)])

    def sql(self, name, query, args=()):
        with self.connect(name) as conn, conn.cursor() as cr:
            cr.execute(query, args)
            return cr.fetchall()

    def connect(self, name):
        return closing(psycopg2.connect(dbname=name, **self.pg_params))

    def probe_rows(self, instance):
        return sorted(self.sql(instance.database_name,
                               "SELECT name, release FROM saas_fleet_probe"))

    def version(self, instance, module=PROBE):
        return self.sql(instance.database_name, "SELECT latest_version FROM ir_module_module "
                                                "WHERE name = %s", [module])[0][0]

    def counts(self, instance):
        with self.connect(instance.database_name) as conn:
            return backup.row_counts(conn)

    def assertServed(self, instance):
        response = self.url_open("/web/login", headers={"Host": instance.host},
                                 allow_redirects=False)
        self.assertEqual(response.status_code, 200, response.text[:300])
        self.assertIn("oe_login_form", response.text)

    def assertUntouched(self, instance, counts, rows):
        """The database as before the update, serving."""
        self.assertEqual(self.counts(instance), counts)
        self.assertEqual(self.probe_rows(instance), rows)
        self.assertEqual(self.version(instance), "18.0.1.0.0")
        self.assertIsNone(maintenance.blocks(config["data_dir"], instance.database_name))
        self.assertServed(instance)

    # -- releases ------------------------------------------------------------------------
    def test_good_release_updates_every_instance_then_nothing_changed_skips(self):
        fleet = self.instances(2)
        self.release("1.1.0", "good")
        campaign = self.drive(self.campaign(fleet))
        self.assertEqual(campaign.state, "done", campaign.line_ids.mapped("error"))
        self.assertEqual(campaign.line_ids.mapped("state"), ["done", "done"])
        self.assertEqual(campaign.line_ids.mapped("canary"), [True, False])
        for instance in fleet:
            self.assertEqual(self.version(instance), "18.0.1.1.0")
            self.assertEqual(self.probe_rows(instance),
                             [("marker", "1.0"), ("migrated", "18.0.1.0.0")])
            self.assertServed(instance)
            operation = self.last_operation(instance, "update")
            self.assertEqual(operation.params["update"], [PROBE], "only what changed")
            self.assertEqual(operation.step_ids.mapped("name"),
                             ["plan", "maintenance", "backup", "start", "odoo", "check",
                              "checksums", "serve"])
            self.assertIn("Module Update", instance.message_ids[0].body, "in the chatter")
        self.assertIn("Updated: 2", campaign.report)
        self.assertIn("p95", campaign.report)
        backups = self.env["saas.backup"].search_count([("instance_id", "in", fleet.ids)])
        self.assertEqual(backups, 2, "one pre-update backup each")

        # Nothing changed since: a second campaign touches no database.
        counts = {instance: self.counts(instance) for instance in fleet}
        started = time.perf_counter()
        again = self.drive(self.campaign(fleet))
        seconds = time.perf_counter() - started
        self.assertEqual(again.state, "done")
        self.assertEqual(again.line_ids.mapped("state"), ["skipped", "skipped"])
        for instance in fleet:
            operation = self.last_operation(instance, "update")
            self.assertEqual(operation.step_ids.mapped("name"), ["plan"])
            self.assertEqual(self.counts(instance), counts[instance])
        self.assertEqual(self.env["saas.backup"].search_count(
            [("instance_id", "in", fleet.ids)]), backups, "no backup taken")
        first, second = (line.operation_id.step_ids.seconds for line in again.line_ids)
        _logger.info("Checksum skip: a campaign over 2 unchanged instances took %.2f s; plan "
                     "step %.3f s on the first (hashes the addons for the campaign), %.3f s on "
                     "the second", seconds, first, second)

    def test_bad_release_is_rolled_back_on_the_canary_and_the_campaign_stops(self):
        canary, other = fleet = self.instances(2)
        before = {instance: (self.counts(instance), self.probe_rows(instance))
                  for instance in fleet}
        self.release("1.2.0", "bad")
        with mute_logger(OPERATION_LOGGER, UPDATE_LOGGER):
            campaign = self.drive(self.campaign(fleet))
        self.assertEqual(campaign.state, "stopped")
        self.assertEqual(campaign.line_ids.mapped("state"), ["failed", "pending"])
        line = campaign.line_ids[0]
        self.assertIn("broken on purpose", line.log_tail)
        self.assertIn("restored as it was", line.error)
        operation = line.operation_id
        self.assertEqual(operation.step_ids.mapped("name")[-2:], ["check", "rollback"])
        for instance in fleet:
            self.assertUntouched(instance, *before[instance])
        self.assertEqual(canary.update_state, "failed")
        self.assertTrue([body for body in canary.message_ids.mapped("body")
                         if "restored as it was" in body], "said in the chatter")
        self.assertFalse(other.update_state)
        self.assertFalse(self.last_operation(other, "update"), "the campaign stopped first")

        # Cancelled; the failed instance is skipped by later campaigns until cleared.
        campaign.action_cancel()
        self.assertEqual(campaign.line_ids.mapped("state"), ["failed", "cancelled"])
        self.release(None)
        later = self.drive(self.campaign(canary, canary_count=0))
        self.assertEqual(later.line_ids.state, "skipped")
        self.assertIn("clear it", later.line_ids.note)
        canary.action_clear_update_failure()
        self.assertFalse(canary.update_state)

    def test_a_hanging_update_is_stopped_and_rolled_back(self):
        instance = self.instances(1)
        before = (self.counts(instance), self.probe_rows(instance))
        self.release("1.3.0", "hang")
        self.patch(config, "options", {**config.options, "saas_update_timeout": 8})
        with mute_logger(OPERATION_LOGGER, UPDATE_LOGGER):
            campaign = self.drive(self.campaign(instance))
        self.assertEqual(campaign.state, "stopped")
        operation = campaign.line_ids.operation_id
        self.assertIn("did not end within 8 s", operation.error)
        paths = instance._update_paths(operation)
        self.assertFalse(odoo_process.find(paths["status"]), "the child is gone")
        self.assertUntouched(instance, *before)

    def test_a_failed_restore_keeps_the_maintenance_page(self):
        instance = self.instances(1)
        self.release("1.2.0", "bad")
        campaign = self.first_update(instance)
        pre_update = self.backups(instance, "before_operation")
        self.assertEqual(pre_update.kind, "before_operation")
        os.remove(pre_update.dump_path)
        with mute_logger(OPERATION_LOGGER, UPDATE_LOGGER):
            self.drive_started(campaign)
        self.assertEqual(campaign.state, "stopped")
        self.assertEqual(instance.update_state, "restore_failed")
        self.assertIn("restore of the pre-update backup failed too", instance.update_error)
        self.assertIsNotNone(maintenance.blocks(config["data_dir"], instance.database_name),
                             "a half-updated database never serves")
        self.addCleanup(maintenance.withdraw, config["data_dir"], instance.database_name)
        response = self.url_open("/web/login", headers={"Host": instance.host},
                                 allow_redirects=False)
        self.assertEqual(response.status_code, 503)
        with self.assertRaisesRegex(UserError, "maintenance page"):
            instance.action_clear_update_failure()
        with self.assertRaises(UserError) as refused:  # rolls the retry back
            campaign.line_ids.operation_id.action_retry()
        self.assertIn("restore a backup", str(refused.exception))

        # The operator restores a good backup in place: the page goes, then clears.
        instance.action_backup_now()
        self.env["saas.operation"]._cron_run("backups")
        good = self.backups(instance, "manual")
        self.assertTrue(good.verified_at, self.op_error(instance))
        instance._saas_restore_in_place(good)
        self.run_operations()
        self.assertEqual(self.last_operation(instance, "restore").state, "done",
                         self.op_error(instance))
        self.assertIsNone(maintenance.blocks(config["data_dir"], instance.database_name))
        self.assertServed(instance)
        instance.action_clear_update_failure()
        self.assertFalse(instance.update_state)

    def first_update(self, instance):
        """A campaign over ``instance``, run until its update's child has started (the page
        is up, the backup taken)."""
        campaign = self.campaign(instance)
        campaign.action_start()
        campaign._saas_advance()
        self.run_operations()
        return campaign

    def drive_started(self, campaign, timeout=240):
        deadline = time.monotonic() + timeout
        while campaign.state == "running" and time.monotonic() < deadline:
            campaign._saas_advance()
            self.run_operations()
            time.sleep(0.3)

    def test_a_killed_worker_is_resumed_and_the_update_collected(self):
        instance = self.instances(1)
        self.release("1.1.0", "good")
        campaign = self.first_update(instance)
        operation = campaign.line_ids.operation_id
        self.assertTrue(operation.params.get("pid"))
        # The worker dies after starting the child, before recording its pid.
        params = dict(operation.params)
        params.pop("pid")
        operation.sudo().write({"params": params, "next_run_at": False})
        self.drive_started(campaign)
        self.assertEqual(campaign.state, "done", operation.error)
        resumed = operation.step_ids.filtered(lambda step: step.attempt == 2)
        self.assertEqual(resumed[:2].mapped("name"), ["interrupted", "odoo"])
        self.assertEqual(self.version(instance), "18.0.1.1.0")
        self.assertServed(instance)

    def test_a_rollback_interrupted_by_a_killed_worker_is_resumed_not_rechecked(self):
        instance = self.instances(1)
        before = (self.counts(instance), self.probe_rows(instance))
        self.release("1.2.0", "bad")
        campaign = self.first_update(instance)
        operation = campaign.line_ids.operation_id
        paths = instance._update_paths(operation)
        deadline = time.monotonic() + 120
        while odoo_process.poll(operation.params["pid"], paths["status"]) == "running" \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        # A worker began the rollback (recorded), then died before restoring anything.
        operation.sudo().write({"next_run_at": False, "params": dict(
            operation.params, rolling_back="The update process failed (simulated).",
            staging="saas_rst_%d_0badf00d" % instance.id,
            replaced="saas_old_%d_0badf00d" % instance.id)})
        with mute_logger(OPERATION_LOGGER, UPDATE_LOGGER):
            self.drive_started(campaign)
        self.assertEqual(campaign.state, "stopped")
        self.assertIn("(simulated)", operation.error, "the rollback went on, no new check")
        self.assertNotIn("check", operation.step_ids.filtered(
            lambda step: step.attempt == 2).mapped("name"))
        self.assertUntouched(instance, *before)
        self.assertNotIn("saas_old_%d_0badf00d" % instance.id, self.databases())
        self.assertEqual(len(self.backups(instance, "before_operation")), 2,
                         "the pre-update backup and the replaced database's")

    def test_a_module_missing_on_the_server_fails_before_anything_is_touched(self):
        instance = self.instances(1)
        self.sql_write(instance, "INSERT INTO ir_module_module (name, state) "
                                 "VALUES ('saas_fleet_ghost', 'installed')")
        before = (self.counts(instance), self.probe_rows(instance))
        with mute_logger(OPERATION_LOGGER):
            campaign = self.drive(self.campaign(instance))
        self.assertEqual(campaign.state, "stopped")
        operation = campaign.line_ids.operation_id
        self.assertIn("missing on this server: saas_fleet_ghost", operation.error)
        self.assertEqual(operation.step_ids.mapped("name"), ["plan"])
        self.assertFalse(self.backups(instance, "before_operation"),
                         "nothing was backed up, nothing restored")
        self.assertEqual(instance.update_state, "failed")
        # Not asked through HTTP: a new registry of this database would warn about the
        # module it lacks.
        self.assertEqual((self.counts(instance), self.probe_rows(instance)), before)
        self.assertIsNone(maintenance.blocks(config["data_dir"], instance.database_name))

        # The operator puts the module back (here: forgets it), then retries.
        self.sql_write(instance, "DELETE FROM ir_module_module WHERE name = 'saas_fleet_ghost'")
        operation.action_retry()
        self.assertFalse(instance.update_state)
        self.run_operations()
        self.assertEqual(operation.state, "done", operation.error)
        self.assertEqual(campaign.line_ids.state, "skipped", "nothing else had changed")

    def sql_write(self, instance, query):
        with self.connect(instance.database_name) as conn, conn, conn.cursor() as cr:
            cr.execute(query)

    # -- app installs and template revisions ----------------------------------------------
    def test_app_install_follows_the_plan_and_the_template_revision_upgrade(self):
        instance, older = self.instances(2)
        plan = instance.plan_id
        with self.assertRaisesRegex(UserError, "no module saas_fleet_nothing"):
            instance._saas_install_apps(["saas_fleet_nothing"])
        with self.assertRaisesRegex(UserError, "not a module name"):
            instance._saas_install_apps(["../etc"])
        with self.assertRaisesRegex(UserError, "never installed in a client database"):
            instance._saas_install_apps(["saas_manager"])
        plan.allowed_module_names = "crm"
        with self.assertRaisesRegex(UserError, "does not allow saas_fleet_app"):
            instance._saas_install_apps([APP])
        plan.allowed_module_names = "crm, %s" % APP
        wizard = self.env["saas.instance.install"].create(
            {"instance_id": instance.id, "module_names": APP})
        wizard.action_confirm()
        operation = self.last_operation(instance, "install")
        deadline = time.monotonic() + 240
        while operation.state in ("queued", "running") and time.monotonic() < deadline:
            self.run_operations()
            time.sleep(0.3)
        self.assertEqual(operation.state, "done", operation.error)
        self.assertEqual(self.version(instance, APP), "18.0.1.0.0")
        self.assertServed(instance)
        self.assertTrue(self.sql(instance.database_name, "SELECT count(*) FROM "
                                 "saas_module_checksum WHERE name = %s", [APP])[0][0])

        # The template gains the app: a revision campaign brings the older clone to it.
        self.template.sudo().write({"module_names": "base,%s,%s" % (PROBE, APP),
                                    "revision": self.template.revision + 1})
        campaign = self.drive(self.campaign(instance | older, mode="revision"))
        self.assertEqual(campaign.state, "done", campaign.line_ids.mapped("error"))
        self.assertEqual(campaign.line_ids.mapped("state"), ["skipped", "done"],
                         "the first one has the app already")
        self.assertEqual(campaign.line_ids.mapped("canary"), [True, True],
                         "a skipped canary hands its role to the next instance")
        self.assertEqual(self.version(older, APP), "18.0.1.0.0")
        self.assertEqual((instance | older).mapped("template_revision"),
                         [self.template.revision] * 2)
        self.assertEqual(self.last_operation(older, "update").params["install"], [APP],
                         "only what the clone lacked")
