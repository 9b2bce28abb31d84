import importlib.util
import os
from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, new_test_user, tagged
from odoo.tools import config

from .common import LiveInstanceCase, SaasCase


def load_health_endpoints():
    """bench/health_endpoints.py (bench/ is not a package): one local HTTP server that
    answers by Host prefix (up-* 200, err-* 500, dead-* reset)."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench",
                        "health_endpoints.py")
    spec = importlib.util.spec_from_file_location("saas_health_endpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@tagged("post_install", "-at_install")
class TestHealthChecks(SaasCase):
    """The health time series: windows, p95, pruning and who reads it.

    The checks are inserted by hand at known times before now; the cron writing
    them against real HTTP is tested in test_lifecycle.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instance = cls.make_instance("healthy")
        cls.now = fields.Datetime.now()

    def add_checks(self, instance, *checks):
        """``checks``: ``(hours ago, up, response_ms)`` each."""
        return self.env["saas.health.check"].create([{
            "instance_id": instance.id, "checked_at": self.now - timedelta(hours=hours),
            "up": up, "response_ms": response_ms, "error": False if up else "down",
        } for hours, up, response_ms in checks])

    def stats(self, instance):
        instance.invalidate_recordset()
        return {name: instance[name] for name in (
            "uptime_24h", "health_checks_24h", "uptime_7d", "health_checks_7d", "uptime_30d",
            "health_checks_30d", "response_p95_ms", "health_check_count")}

    def test_uptime_windows(self):
        self.add_checks(self.instance,
                        (1, True, 20), (2, True, 20), (3, False, 0), (23, True, 20),  # 24 h
                        (30, False, 0), (24 * 6, True, 20),                           # 7 d
                        (24 * 8, False, 0), (24 * 29, False, 0),                      # 30 d
                        (24 * 31, True, 20), (24 * 34, True, 20))                     # older
        self.assertEqual(self.stats(self.instance), {
            "uptime_24h": 75.0, "health_checks_24h": 4,
            "uptime_7d": 66.67, "health_checks_7d": 6,   # 4 up of 6
            "uptime_30d": 50.0, "health_checks_30d": 8,  # 4 up of 8
            "response_p95_ms": 20, "health_check_count": 10,
        })

    def test_no_checks_in_a_window(self):
        self.add_checks(self.instance, (24 * 3, False, 0))
        stats = self.stats(self.instance)
        self.assertEqual((stats["health_checks_24h"], stats["uptime_24h"]), (0, 0.0))
        self.assertEqual((stats["health_checks_7d"], stats["uptime_7d"]), (1, 0.0))
        self.assertEqual(stats["response_p95_ms"], 0, "no successful check in 7 days")
        empty = self.make_instance("nochecks")
        self.assertEqual(set(self.stats(empty).values()), {0})

    def test_p95_over_the_successful_checks_of_seven_days(self):
        # 1..100 ms, one an hour: interpolated p95 = 1 + 0.95 x 99 = 95.05
        self.add_checks(self.instance, *((hours, True, 100 - hours) for hours in range(100)))
        self.add_checks(self.instance, (5, False, 5000),          # failed: not counted
                        (24 * 7 + 2, True, 90000))                # older than 7 days
        self.assertEqual(self.stats(self.instance)["response_p95_ms"], 95)

    def test_one_query_for_many_instances(self):
        others = self.make_instance("other1") | self.make_instance("other2")
        for index, instance in enumerate(others):
            self.add_checks(instance, *((hours, hours % (index + 2) != 0, 10)
                                        for hours in range(12)))
        instances = self.instance | others
        self.env["saas.health.check"].flush_model()
        instances.invalidate_recordset()
        with self.assertQueryCount(1):
            values = instances.mapped("uptime_24h")
        # other1: hours 0, 2, 4 ... down (6 of 12); other2: 0, 3, 6, 9 down (4 of 12)
        self.assertEqual(values, [0.0, 50.0, 66.67])

    def test_pruning_keeps_the_retention(self):
        kept = self.add_checks(self.instance, (1, True, 10), (24 * 34, True, 10))
        old = self.add_checks(self.instance, (24 * 36, True, 10), (24 * 90, False, 0))
        self.assertEqual(self.env["saas.health.check"]._gc_old_checks(), 2)
        self.assertEqual(self.env["saas.health.check"].search(
            [("instance_id", "=", self.instance.id)]), kept)
        self.assertFalse(old.exists())

        self.env["ir.config_parameter"].set_param("saas.health_retention_days", 60)
        recent_old = self.add_checks(self.instance, (24 * 59, True, 10), (24 * 61, True, 10))
        self.env["saas.health.check"]._gc_old_checks()
        self.assertEqual(recent_old.exists(), recent_old[0])
        # set past the settings screen: never below the 30-day window (31 days kept)
        month = self.add_checks(self.instance, (24 * 30 + 12, True, 10))
        self.env["ir.config_parameter"].set_param("saas.health_retention_days", 2)
        self.env["saas.health.check"]._gc_old_checks()
        self.assertEqual(self.env["saas.health.check"].search(
            [("instance_id", "=", self.instance.id)]), kept[0] | month)

    def test_pruning_in_chunks(self):
        self.patch(type(self.env["saas.health.check"]), "_prune_chunk", 3)
        self.add_checks(self.instance, *((24 * 40 + hours, True, 10) for hours in range(7)))
        self.add_checks(self.instance, (1, True, 10))
        self.assertEqual(self.env["saas.health.check"]._gc_old_checks(), 7)
        self.assertEqual(self.env["saas.health.check"].search_count(
            [("instance_id", "=", self.instance.id)]), 1)

    def test_checks_go_with_their_instance(self):
        checks = self.add_checks(self.instance, (1, True, 10))
        self.instance.unlink()
        self.assertFalse(checks.exists())

    def test_retention_setting(self):
        self.saas_admin.groups_id += self.env.ref("base.group_system")
        form = Form(self.env["res.config.settings"].with_user(self.saas_admin))
        self.assertEqual(form.saas_health_retention_days, 35)
        form.saas_health_retention_days = 90
        form.save().execute()
        self.assertEqual(self.env["saas.settings"]._get("saas.health_retention_days"), 90)
        form = Form(self.env["res.config.settings"].with_user(self.saas_admin))
        form.saas_health_retention_days = 30
        with self.assertRaises(ValidationError):
            form.save()

    def test_who_reads_the_checks(self):
        checks = self.add_checks(self.instance, (1, True, 10))
        Check = self.env["saas.health.check"]
        mine = [("instance_id", "=", self.instance.id)]
        self.assertEqual(Check.with_user(self.saas_user).search(mine), checks)
        self.assertEqual(checks.with_user(self.saas_user).read(["up"])[0]["up"], True)
        self.assertEqual(self.instance.with_user(self.saas_user).uptime_24h, 100.0)
        for user in (self.saas_user, self.saas_manager):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                checks.with_user(user).write({"up": False})
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                Check.with_user(user).create({"instance_id": self.instance.id,
                                              "checked_at": self.now, "up": True})
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                checks.with_user(user).unlink()
        contact = self.env["res.partner"].create(
            {"name": "Acme Portal", "parent_id": self.customer.id, "email": "p@acme.test"})
        portal = new_test_user(self.env, "portal_health", "base.group_portal",
                               partner_id=contact.id)
        internal = new_test_user(self.env, "internal_health", "base.group_user")
        for user in (portal, internal):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                Check.with_user(user).search([])
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                checks.with_user(user).read(["up"])
        with self.assertRaises(AccessError):  # its own instance, but not its health figures
            self.instance.with_user(portal).read(["uptime_24h"])

    def test_other_company_checks_are_hidden(self):
        company_b = self.env["res.company"].create({"name": "Health B"})
        instance_b = self.make_instance("healthb", company_id=company_b.id)
        mine = self.add_checks(self.instance, (1, True, 10))
        theirs = self.add_checks(instance_b, (1, True, 10))
        user_a = new_test_user(self.env, "health_a", "saas_manager.group_saas_user",
                               company_id=self.env.company.id,
                               company_ids=[self.env.company.id])
        visible = self.env["saas.health.check"].with_user(user_a).search(
            [("instance_id", "in", (self.instance | instance_b).ids)])
        self.assertIn(mine, visible)
        self.assertNotIn(theirs, visible)
        with self.assertRaises(AccessError):
            theirs.with_user(user_a).read(["up"])

    def test_health_checks_button(self):
        checks = self.add_checks(self.instance, (1, True, 10), (2, False, 0))
        action = self.instance.with_user(self.saas_user).action_view_health_checks()
        self.assertEqual(action["res_model"], "saas.health.check")
        self.assertEqual(self.env["saas.health.check"].search(action["domain"]), checks)
        self.assertEqual(self.instance.health_check_count, 2)


@tagged("post_install", "-at_install")
class TestHealthCron(LiveInstanceCase):
    """The hourly cron against real HTTP (a local server answering by Host) and the
    instances' real databases: one check record per instance and run."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        endpoints = load_health_endpoints()
        server, thread, cls.port = endpoints.start(slow_seconds=1)
        cls.addClassCleanup(thread.join, 5)
        cls.addClassCleanup(endpoints.stop, server)

    def setUp(self):
        super().setUp()
        self.patch(config, "options", {**config.options,
                                       "saas_odoo_url": "http://127.0.0.1:%d" % self.port})
        self.env["ir.config_parameter"].set_param("saas.health_alert_failures", 2)

    def checks(self, instance):
        instance.invalidate_recordset()
        return self.env["saas.health.check"].search([("instance_id", "=", instance.id)])

    def test_each_run_records_one_check_per_instance(self):
        up = self.make_live_instance("up-cron")
        err = self.make_live_instance("err-cron")
        dead = self.make_live_instance("dead-cron")
        self.env["saas.instance"]._cron_health()
        self.assertEqual(up.health_status, "up", up.health_error)
        check = self.checks(up)
        self.assertEqual((check.up, check.error, check.checked_at, check.response_ms),
                         (True, False, up.health_checked_at, up.health_response_ms))
        self.assertEqual((up.uptime_24h, up.health_checks_24h, up.response_p95_ms),
                         (100.0, 1, check.response_ms))
        self.assertEqual((err.health_status, self.checks(err).up), ("down", False))
        self.assertIn("500", self.checks(err).error)
        self.assertEqual(self.checks(err).error, err.health_error)
        self.assertEqual((self.checks(dead).up, self.checks(dead).response_ms), (False, 0))

        self.make_outage(up)
        for _run in range(3):
            self.env["saas.instance"]._cron_health()
        for instance in up | err | dead:
            self.assertEqual(len(self.checks(instance)), 4, instance.name)
        self.assertEqual(self.checks(up).sorted("id").mapped("up"), [True, False, False, False])
        self.assertEqual((up.health_status, up.health_failures), ("down", 3))
        self.assertIn("database", self.checks(up)[0].error)
        self.assertEqual((up.uptime_24h, up.uptime_7d, up.uptime_30d), (25.0, 25.0, 25.0))
        self.assertEqual(up.response_p95_ms, check.response_ms, "failed checks left out")
        self.assertEqual((err.uptime_24h, err.health_checks_24h), (0.0, 4))
        alerts = up.activity_ids.filtered(lambda a: "is down" in (a.summary or ""))
        self.assertEqual(len(alerts), 1, "one alert per outage")

    def test_only_active_instances_are_checked(self):
        active = self.make_live_instance("up-active")
        draft = self.make_instance("up-draft")
        self.env["saas.instance"]._cron_health()
        self.assertEqual(len(self.checks(active)), 1)
        self.assertFalse(self.checks(draft))

