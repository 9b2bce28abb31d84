"""Scheduled backups, retention and restore drills, on small real databases."""

import os
from datetime import timedelta

from odoo import fields
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from ..engine import pg, schedule
from .common import LiveInstanceCase


@tagged("post_install", "-at_install")
class TestBackupSchedule(LiveInstanceCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.every_6h = cls.env.ref("saas_manager.plan_enterprise")
        cls.daily = cls.env.ref("saas_manager.plan_starter")

    def run_backups(self):
        return self.env["saas.operation"]._cron_run("backups")

    def scheduled(self, instance):
        return instance.backup_ids.filtered(lambda b: b.kind == "scheduled")

    def test_seed_plans_back_up_as_their_cards_say(self):
        self.assertEqual(
            [self.env.ref("saas_manager.plan_%s" % code).backup_interval_hours
             for code in ("starter", "professional", "enterprise")], [24, 12, 6])

    def test_each_instance_is_backed_up_once_per_slot_of_its_plan(self):
        fast = self.make_live_instance("every6h", plan_id=self.every_6h.id)
        slow = self.make_live_instance("daily", plan_id=self.daily.id)
        # A fixed point in time: a minute into the 6-hour plan's current slot.
        start = schedule.slot_start(fields.Datetime.now(), 6 * 3600,
                                    schedule.phase(fast.database_name, 6 * 3600))
        now = start + timedelta(minutes=1)
        self.assertEqual(self.Instance._cron_schedule_backups(now), fast | slow,
                         "never backed up: both due")
        self.assertEqual(self.Instance._cron_schedule_backups(now), fast | slow,
                         "queued once: asking again gives the same open operations")
        self.assertEqual(self.run_backups(), 2)
        for instance in (fast, slow):
            self.assertEqual(len(self.scheduled(instance)), 1, self.op_error(instance))
            self.assertEqual(self.last_operation(instance, "backup").params["kind"],
                             "scheduled")
        self.env.cr.execute("UPDATE saas_backup SET stamp = %s WHERE instance_id IN %s",
                            (now, (fast.id, slow.id)))
        self.env.invalidate_all()
        self.assertNotIn(fast, self.Instance._cron_schedule_backups(now + timedelta(minutes=10)))
        for instance, hours in ((fast, 6), (slow, 24)):
            due = schedule.next_due(now, now, hours * 3600, instance.database_name)
            self.assertLessEqual(due - now, timedelta(hours=hours))
            self.assertNotIn(instance, self.Instance._cron_schedule_backups(
                due - timedelta(seconds=1)), "not before its next slot")
            self.assertIn(instance, self.Instance._cron_schedule_backups(due),
                          "due at its next slot")

    def test_the_schedule_is_bounded_and_skips_what_has_no_changing_database(self):
        self.env["ir.config_parameter"].set_param("saas.backup_schedule_batch", "2")
        instances = [self.make_live_instance("bounded%d" % i) for i in range(3)]
        suspended = self.make_live_instance("asleep")
        suspended._suspend("manual")
        off = self.env["saas.plan"].create({"name": "No backups", "code": "nobackup",
                                            "backup_interval_hours": 0})
        self.make_live_instance("nobackups", plan_id=off.id)
        queued = self.Instance._cron_schedule_backups()
        self.assertEqual(len(queued), 2, "at most the batch")
        self.assertLessEqual(set(queued.ids), {i.id for i in instances})
        self.assertFalse(self.Instance._cron_schedule_backups(), "the batch is full")
        self.run_backups()
        self.assertEqual(len(self.Instance._cron_schedule_backups()), 1, "the third one")

    def test_back_up_now_runs_on_the_backup_runner(self):
        instance = self.make_live_instance("bynow")
        instance.with_user(self.saas_manager).action_backup_now()
        operation = self.last_operation(instance, "backup")
        self.assertEqual((operation.state, operation._lane()), ("queued", "backups"))
        self.assertEqual(self.run_operations(), 0, "not the main runner's")
        self.run_backups()
        self.assertEqual(operation.state, "done", operation.error)
        self.assertEqual(instance.backup_ids.kind, "manual")
        self.assertEqual(instance.backup_ids.row_counts, {"public.note": 1})
        self.assertAlmostEqual(instance.backup_size_mb, (
            instance.backup_ids.dump_size + instance.backup_ids.filestore_size) / 2**20, 3)
        self.assertGreater(instance.backup_size_mb, 0)
        self.assertGreaterEqual(instance.server_id.backup_size_mb, instance.backup_size_mb)
        self.assertEqual(instance.last_backup_at, instance.backup_ids.stamp)
        self.assertEqual(operation.step_ids.mapped("name"), ["back up"],
                         "no object store configured: no copy step")

    # -- retention ---------------------------------------------------------------------
    def backups_at(self, instance, kind, *ages):
        """Real backups of ``instance``, then dated ``ages`` (timedeltas) ago."""
        now = fields.Datetime.now()
        made = self.env["saas.backup"]
        for age in ages:
            backup = instance._saas_backup_now(kind)
            self.env.cr.execute("UPDATE saas_backup SET stamp = %s WHERE id = %s",
                                (now - age, backup.id))
            made |= backup
        self.env.invalidate_all()
        return made

    def test_retention_keeps_the_plan_set_and_deletes_files_first(self):
        plan = self.env["saas.plan"].create({
            "name": "Two days", "code": "twodays", "backup_keep_daily": 2,
            "backup_keep_weekly": 0, "backup_keep_monthly": 0})
        instance = self.make_live_instance("pruned", plan_id=plan.id)
        old1, old2, kept_day, recent = self.backups_at(
            instance, "scheduled", timedelta(days=10), timedelta(days=9), timedelta(days=8),
            timedelta(hours=2))
        manual = self.backups_at(instance, "manual", timedelta(days=100))
        self.assertEqual(manual.expires_on, manual.create_date.date() + timedelta(days=30),
                         "expiry from the day it was recorded")
        manual.sudo().expires_on = fields.Date.today() - timedelta(days=1)
        files = {b: (b.dump_path, b.filestore_path) for b in (old1, old2, manual)}
        self.assertEqual(self.env["saas.backup"]._cron_prune(), 3)
        self.assertEqual(instance.backup_ids, recent | kept_day)
        for paths in files.values():
            self.assertFalse(any(os.path.exists(path) for path in paths))
        self.assertTrue(os.path.exists(recent.dump_path))
        self.assertIn("Retention deleted 3 backup(s)", instance.message_ids[0].body)

    def test_the_newest_verified_backup_of_a_live_instance_is_never_deleted(self):
        plan = self.env["saas.plan"].create({
            "name": "Nothing kept", "code": "nokeep", "backup_keep_daily": 0,
            "backup_keep_weekly": 0, "backup_keep_monthly": 0})
        instance = self.make_live_instance("lastone", plan_id=plan.id)
        _older, newest = self.backups_at(instance, "scheduled", timedelta(days=30),
                                        timedelta(days=20))
        self.env["saas.backup"]._cron_prune()
        self.assertEqual(instance.backup_ids, newest)

    def test_the_newest_verified_backup_is_kept_even_when_its_kind_has_expired(self):
        instance = self.make_live_instance("manualonly")
        older, newest = self.backups_at(instance, "manual", timedelta(days=60),
                                        timedelta(days=40))
        (older | newest).sudo().expires_on = fields.Date.today() - timedelta(days=1)
        self.assertEqual(self.env["saas.backup"]._cron_prune(), 1)
        self.assertEqual(instance.backup_ids, newest, "the last way back stays")

    def test_a_backup_an_operation_will_read_is_not_pruned(self):
        instance = self.make_live_instance("inuse")
        older, _newest = self.backups_at(instance, "manual", timedelta(days=60),
                                         timedelta(days=40))
        older.sudo().expires_on = fields.Date.today() - timedelta(days=1)
        drill = older._saas_queue_drill()
        self.assertEqual(self.env["saas.backup"]._cron_prune(), 0)
        drill.action_cancel()
        self.assertEqual(self.env["saas.backup"]._cron_prune(), 1)

    def test_a_failed_scheduled_backup_waits_for_the_next_slot(self):
        instance = self.make_live_instance("failing", plan_id=self.every_6h.id)
        self.patch(config, "options", {**config.options, "saas_backup_dir": "/proc/nowhere"})
        now = fields.Datetime.now()
        self.assertEqual(self.Instance._cron_schedule_backups(now), instance)
        with mute_logger("odoo.addons.saas_manager.models.saas_operation"):
            self.run_backups()
        self.assertEqual(self.last_operation(instance, "backup").state, "failed")
        failed_at = self.last_operation(instance, "backup").ended_at
        due = schedule.next_due(failed_at, failed_at, 6 * 3600, instance.database_name)
        # Ten minutes later, unless the instance's next slot starts sooner (it depends on
        # the time of day and the database name).
        soon = min(now + timedelta(minutes=10), due - timedelta(seconds=1))
        self.assertFalse(self.Instance._cron_schedule_backups(soon),
                         "not queued again every ten minutes")
        self.assertEqual(self.Instance._cron_schedule_backups(due), instance)

    def test_final_backups_expire_and_take_the_instance_backups_with_them(self):
        instance = self.make_live_instance("forgotten")
        scheduled = self.backups_at(instance, "scheduled", timedelta(days=5))
        instance._terminate()
        self.run_operations()
        final = instance.final_backup_id
        self.assertEqual(final.expires_on, final.stamp.date() + timedelta(days=90))
        self.env["saas.backup"]._cron_prune()
        self.assertEqual(instance.backup_ids, final | scheduled, "within the 90 days")
        final.sudo().expires_on = fields.Date.today() - timedelta(days=1)
        paths = [final.dump_path, scheduled.dump_path]
        self.assertEqual(self.env["saas.backup"]._cron_prune(), 2)
        self.assertFalse(instance.backup_ids)
        self.assertFalse(any(os.path.exists(path) for path in paths))

    # -- restore drills ------------------------------------------------------------------
    def test_a_drill_proves_a_backup_and_catches_a_truncated_one(self):
        instance = self.make_live_instance("drilled")
        good = instance._saas_backup_now("manual")
        good.action_drill()
        self.run_backups()
        self.assertEqual(good.drill_state, "passed", good.drill_report)
        self.assertIn("1 tables, 1 rows", good.drill_report)
        bad = instance._saas_backup_now("manual")
        with open(bad.dump_path, "r+b") as handle:
            handle.truncate(int(bad.dump_size) // 2)
        activities = len(instance.activity_ids)
        with mute_logger("odoo.addons.saas_manager.models.saas_operation"):
            bad.action_drill()
            self.run_backups()
        self.assertEqual(bad.drill_state, "failed")
        self.assertIn("bytes", bad.drill_report)
        self.assertEqual(len(instance.activity_ids), activities + 1, "an alert to act on")
        self.assertIn("failed its restore drill", instance.activity_ids[-1].summary)
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute("SELECT datname FROM pg_database WHERE datname LIKE 'saas_drill_%%'")
            self.assertFalse(cr.fetchall(), "scratch databases dropped")

    def test_the_weekly_drill_samples_never_drilled_backups_first(self):
        instance = self.make_live_instance("sampled")
        first = instance._saas_backup_now("manual")
        first.sudo().write({"drill_state": "passed", "drill_at": fields.Datetime.now()})
        second = instance._saas_backup_now("manual")
        self.env["ir.config_parameter"].set_param("saas.backup_drill_sample", "0")
        self.assertEqual(self.env["saas.backup"]._cron_drill(), second, "at least one")
        self.run_backups()
        self.assertEqual(second.drill_state, "passed", second.drill_report)
