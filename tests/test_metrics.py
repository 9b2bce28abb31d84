"""/saas/metrics: off without a token, bearer-token access, and the figures it serves.

Instances, subscriptions, operations and backups are records only (no
database is cloned); the body is read back with prometheus_client's parser.
"""

import math
from datetime import timedelta
from unittest.mock import patch

import requests
from prometheus_client.parser import text_string_to_metric_families

from odoo import fields
from odoo.tests import HttpCase, tagged
from odoo.tools import config

from ..controllers import metrics as metrics_controller
from ..engine import metrics

TOKEN = "metrics-test-token-0123456789abcdef"


def samples(text):
    """{(sample name, sorted labels): value} of a body in the text format."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@tagged("post_install", "-at_install")
class TestMetricsEndpoint(HttpCase):
    """Six instances (three active: up, down, not checked yet), subscriptions in every
    state on a plan priced in a second currency at 2 company units per unit, four
    provisionings done, and backups of which one counts."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.startClassPatcher(patch.dict(config.options, {"saas_metrics_token": TOKEN}))
        set_param = cls.env["ir.config_parameter"].sudo().set_param
        set_param("saas.base_domain", "example.com")
        set_param("saas.routing_mode", "host")
        cls.before = samples(metrics.render(cls.env["saas.metrics"]._saas_collect()))
        cls.company_currency = cls.env.company.currency_id
        foreign = cls.env.ref("base.EUR" if cls.company_currency.name != "EUR" else "base.USD")
        foreign.active = True
        cls.set_rate(cls.company_currency, 1.0)
        cls.set_rate(foreign, 0.5)  # one foreign unit = 2 company units
        cls.foreign_plan = cls.make_plan("metrics_foreign", foreign, 30.0, 240.0)
        cls.local_plan = cls.make_plan("metrics_local", cls.company_currency, 10.0, 100.0)
        cls.customer = cls.env["res.partner"].create({"name": "Metrics Customer"})
        make = cls.make_instance
        cls.up = make("mup", "active", health_status="up")
        cls.down = make("mdown", "active", health_status="down")
        cls.unchecked = make("munchecked", "active")
        cls.suspended = make("msuspended", "suspended", health_status="up")
        cls.draft = make("mdraft", "draft")
        cls.failed = make("mfailed", "failed", plan=cls.local_plan)
        cls.make_subscriptions()
        cls.make_operations()
        cls.make_backups()

    # -- data -------------------------------------------------------------------------
    @classmethod
    def set_rate(cls, currency, rate):
        Rate = cls.env["res.currency.rate"]
        values = {"currency_id": currency.id, "company_id": cls.env.company.id,
                  "name": fields.Date.today()}
        existing = Rate.search([(key, "=", value) for key, value in values.items()])
        if existing:
            existing.rate = rate
        else:
            Rate.create({**values, "rate": rate})

    @classmethod
    def make_plan(cls, code, currency, monthly, yearly):
        return cls.env["saas.plan"].create({
            "name": code, "code": code, "currency_id": currency.id, "price_monthly": monthly,
            "price_yearly": yearly, "backup_interval_hours": 0})

    @classmethod
    def make_instance(cls, subdomain, state, plan=None, **values):
        return cls.env["saas.instance"].create({
            "name": subdomain, "partner_id": cls.customer.id,
            "subdomain": subdomain, "template_id": cls.env.ref("saas_manager.template_blank").id,
            "plan_id": (plan or cls.foreign_plan).id, "state": state, **values})

    @classmethod
    def make_subscriptions(cls):
        """Billed: 30 (monthly), 240 / 12 (yearly), 30 (suspended) foreign units and 10
        company units; not billed: a trial, a cancelled and a draft subscription."""
        for instance, state, period in (
                (cls.up, "active", "monthly"), (cls.down, "expiring", "yearly"),
                (cls.suspended, "suspended", "monthly"), (cls.unchecked, "trial", "monthly"),
                (cls.up, "cancelled", "monthly"), (cls.draft, "draft", "monthly"),
                (cls.failed, "active", "monthly")):
            cls.env["saas.subscription"].create(
                {"instance_id": instance.id, "state": state, "period": period})

    @classmethod
    def make_operations(cls):
        Operation = cls.env["saas.operation"]
        for seconds in (0.4, 3.0, 45.0, 200.0):
            Operation.create({"instance_id": cls.up.id, "kind": "provision", "state": "done",
                              "seconds": seconds})
        Operation.create({"instance_id": cls.down.id, "kind": "provision", "state": "failed",
                          "seconds": 1.0})
        Operation.create({"instance_id": cls.down.id, "kind": "backup", "state": "done",
                          "seconds": 7.0})

    @classmethod
    def make_backups(cls):
        """``up``: verified 1 h ago (counts), 2 h ago, and 10 min ago with a failed drill;
        ``unchecked``: a backup never verified; ``down``: none."""
        now = fields.Datetime.now()
        for instance, age, verified, drill in (
                (cls.up, timedelta(hours=1), True, False),
                (cls.up, timedelta(hours=2), True, False),
                (cls.up, timedelta(minutes=10), True, "failed"),
                (cls.unchecked, timedelta(hours=3), False, False)):
            name = "%s_%d" % (instance.database_name, age.total_seconds())
            cls.env["saas.backup"].create({
                "source": "instance", "instance_id": instance.id, "kind": "scheduled",
                "database_name": instance.database_name, "stamp": now - age,
                "verified_at": verified and now, "drill_state": drill,
                "dump_path": "/nowhere/%s.dump" % name,
                "filestore_path": "/nowhere/%s.tar.gz" % name})

    # -- requests ---------------------------------------------------------------------
    def scrape(self, token=TOKEN):
        headers = {"Authorization": "Bearer %s" % token} if token is not None else {}
        return self.url_open("/saas/metrics", headers=headers)

    def assertAdded(self, figures, name, expected, **labels):
        """The sample ``name{labels}`` grew by ``expected`` since before the class's data
        (the test database may hold records of its own)."""
        key = (name, tuple(sorted(labels.items())))
        self.assertAlmostEqual(figures[key] - self.before.get(key, 0), expected, places=6,
                               msg=key)

    # -- access -----------------------------------------------------------------------
    def test_off_without_a_token(self):
        with patch.dict(config.options, {"saas_metrics_token": ""}):
            self.assertEqual(self.scrape().status_code, 404)

    def test_off_without_a_database(self):
        self.patch(config, "options", {**config.options, "dbfilter": "^%h$"})
        response = requests.get(self.base_url() + "/saas/metrics", timeout=30, headers={
            "Host": "nowhere.invalid", "Authorization": "Bearer %s" % TOKEN})
        self.assertEqual(response.status_code, 404)

    def test_a_bearer_token_is_needed(self):
        for token in (None, "wrong", TOKEN + "x", ""):
            response = self.scrape(token)
            self.assertEqual(response.status_code, 401, token)
            self.assertEqual(response.headers["WWW-Authenticate"], "Bearer")
            self.assertNotIn("saas_", response.text)
        basic = self.url_open("/saas/metrics", headers={"Authorization": "Basic %s" % TOKEN})
        self.assertEqual(basic.status_code, 401)

    def test_failures_are_rate_limited_but_the_token_still_works(self):
        self.env.cr.execute("DELETE FROM saas_rate_limit")  # counters of earlier tests
        with patch.object(metrics_controller, "FAILURE_LIMIT", 2):
            self.assertEqual([self.scrape("wrong").status_code for _i in range(3)],
                             [401, 401, 429])
            self.assertEqual(self.scrape().status_code, 200)

    def test_served_with_the_token(self):
        response = self.scrape()
        self.assertEqual(response.status_code, 200, response.text[:500])
        self.assertEqual(response.headers["Content-Type"],
                         "text/plain; version=0.0.4; charset=utf-8")
        types = {family.name: family.type
                 for family in text_string_to_metric_families(response.text)}
        self.assertEqual(types, {
            "saas_instances": "gauge", "saas_instance_up": "gauge",
            "saas_provisioning_seconds": "histogram", "saas_operations": "gauge",
            "saas_backup_newest_verified_age_seconds": "gauge", "saas_mrr": "gauge"})

    # -- figures ----------------------------------------------------------------------
    def test_the_figures_are_those_of_the_records(self):
        response = self.scrape()
        self.assertEqual(response.status_code, 200, response.text[:500])
        figures = samples(response.text)
        for state, count in (("active", 3), ("suspended", 1), ("draft", 1), ("failed", 1),
                             ("provisioning", 0), ("terminated", 0)):
            self.assertAdded(figures, "saas_instances", count, state=state)
        self.assertEqual(figures[("saas_instance_up", (("instance", "mup.example.com"),))],
                         1)
        self.assertEqual(
            figures[("saas_instance_up", (("instance", "mdown.example.com"),))], 0)
        up_hosts = {dict(labels)["instance"] for name, labels in figures
                    if name == "saas_instance_up"}
        self.assertFalse({"munchecked.example.com", "msuspended.example.com"} & up_hosts,
                         "not checked yet, or not active")

        # Provisionings done: 0.4, 3, 45, 200 s (the failed one does not count).
        for le, count in (("0.5", 1), ("1.0", 1), ("2.0", 1), ("5.0", 2), ("10.0", 2),
                          ("30.0", 2), ("60.0", 3), ("120.0", 3), ("+Inf", 4)):
            self.assertAdded(figures, "saas_provisioning_seconds_bucket", count, le=le)
        self.assertAdded(figures, "saas_provisioning_seconds_count", 4)
        self.assertAdded(figures, "saas_provisioning_seconds_sum", 248.4)
        self.assertAdded(figures, "saas_operations", 4, kind="provision", state="done")
        self.assertAdded(figures, "saas_operations", 1, kind="provision", state="failed")
        self.assertAdded(figures, "saas_operations", 1, kind="backup", state="done")
        self.assertAdded(figures, "saas_operations", 0, kind="terminate", state="queued")

        # (30 + 240 / 12 + 30) foreign units at 2 company units each, + 10 company units.
        self.assertAdded(figures, "saas_mrr", 170.0, currency=self.company_currency.name)

    def test_backup_ages(self):
        figures = samples(self.scrape().text)
        ages = {dict(labels)["instance"]: value for (name, labels), value in figures.items()
                if name == "saas_backup_newest_verified_age_seconds"}
        self.assertFalse({"msuspended.example.com", "mdraft.example.com"} & set(ages),
                         "active instances only")
        # The request's clock is the test transaction's, which began before the backups.
        self.assertAlmostEqual(ages["mup.example.com"], 3600, delta=300)
        self.assertEqual(ages["mdown.example.com"], math.inf, "no backup at all")
        self.assertEqual(ages["munchecked.example.com"], math.inf, "none verified")
