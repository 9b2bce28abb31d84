from datetime import date

from freezegun import freeze_time

from odoo.tests import tagged

from .common import SubscriptionCase

JAN, FEB, MAR, APR = (date(2026, month, 1) for month in (1, 2, 3, 4))


@tagged("post_install", "-at_install")
class TestSaasReports(SubscriptionCase):
    """Three months of a small SaaS business, driven through the real lifecycle,
    and the figures the reports give, computed by hand:

    ===========  =====================================  =====================
    10 Jan       A: Starter monthly 29, B: Starter      new 29 + 24.17
                 yearly 290 (24.17 a month)
    25 Jan       C starts a 14-day trial                 trial started
    8 Feb        C's trial converts (29)                 new 29, converted
    15 Feb       A upgrades to Professional (79)         expansion 50
    20 Feb       D starts a trial                        trial started
    1 Mar        D cancels during its trial              trial lost
    3 Mar        A's downgrade to Starter at renewal     contraction 50
    5 Mar        B cancels                               churn 24.17
    ===========  =====================================  =====================
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Prices in the company's currency: the conversion has its own test.
        (cls.plan | cls.professional).currency_id = cls.env.company.currency_id
        cls.customers = cls.env["res.partner"].create(
            [{"name": name, "email": "owner@%s.test" % name.lower(), "is_company": True}
             for name in ("Globex", "Initech")])

    def business(self):
        a = self.subscribe("rep-a")
        self.subscribe("rep-b", period="yearly")
        c = self.subscribe("rep-c", activate=False, skip_trial=False,
                           partner_id=self.customers[0].id, date_start=date(2026, 1, 25))
        with freeze_time(c.date_start):
            c.action_activate()
        self.at(date(2026, 2, 8), "_cron_renew", "_cron_expiry")
        self.change(a, self.professional, day=date(2026, 2, 15))
        d = self.subscribe("rep-d", activate=False, skip_trial=False,
                           partner_id=self.customers[1].id, date_start=date(2026, 2, 20))
        with freeze_time(d.date_start):
            d.action_activate()
        with freeze_time("2026-03-01"):
            d.action_cancel()
        self.change(a, self.plan, day=date(2026, 3, 2))
        self.at(date(2026, 3, 3), "_cron_renew")
        with freeze_time("2026-03-05"):
            self.Subscription.search([("instance_id.subdomain", "=", "rep-b")]).action_cancel()
        return a

    def kpi(self, month):
        return self.env["saas.kpi.report"].search([
            ("date", "=", month), ("company_id", "=", self.env.company.id)])

    def figures(self, row, names):
        """Rounded to 3 decimals: the view divides in numeric, the ORM reads floats."""
        return {name: round(row[name], 3) for name in names}

    def test_monthly_figures(self):
        self.business()
        money = ("mrr", "arr", "mrr_start", "new_mrr", "expansion_mrr", "contraction_mrr",
                 "churned_mrr", "arpu")
        counts = ("customers", "customers_start", "churned_customers", "trials_started",
                  "trials_converted", "trials_lost")
        rates = ("logo_churn_rate", "revenue_churn_rate", "trial_conversion_rate")
        jan, feb, mar, apr = (self.kpi(month) for month in (JAN, FEB, MAR, APR))
        self.assertEqual(self.figures(jan, money), {
            "mrr": 53.17, "arr": 638.04, "mrr_start": 0.0, "new_mrr": 53.17,
            "expansion_mrr": 0.0, "contraction_mrr": 0.0, "churned_mrr": 0.0,
            "arpu": 26.585})
        self.assertEqual(self.figures(feb, money), {
            "mrr": 132.17, "arr": 1586.04, "mrr_start": 53.17, "new_mrr": 29.0,
            "expansion_mrr": 50.0, "contraction_mrr": 0.0, "churned_mrr": 0.0,
            "arpu": 44.057})  # 132.17 / 3
        self.assertEqual(self.figures(mar, money), {
            "mrr": 58.0, "arr": 696.0, "mrr_start": 132.17, "new_mrr": 0.0,
            "expansion_mrr": 0.0, "contraction_mrr": 50.0, "churned_mrr": 24.17,
            "arpu": 29.0})
        self.assertEqual([self.figures(row, counts) for row in (jan, feb, mar)], [
            {"customers": 2, "customers_start": 0, "churned_customers": 0,
             "trials_started": 1, "trials_converted": 0, "trials_lost": 0},
            {"customers": 3, "customers_start": 2, "churned_customers": 0,
             "trials_started": 1, "trials_converted": 1, "trials_lost": 0},
            {"customers": 2, "customers_start": 3, "churned_customers": 1,
             "trials_started": 0, "trials_converted": 0, "trials_lost": 1}])
        self.assertEqual([self.figures(row, rates) for row in (feb, mar)], [
            {"logo_churn_rate": 0.0, "revenue_churn_rate": 0.0, "trial_conversion_rate": 100.0},
            # 1 of 3 paying; (24.17 + 50) / 132.17; 0 of 1 ended trial
            {"logo_churn_rate": 33.333, "revenue_churn_rate": 56.117,
             "trial_conversion_rate": 0.0}])
        self.assertEqual((apr.mrr, apr.customers, apr.new_mrr), (58.0, 2, 0.0),
                         "a month without change carries the MRR over")

    def test_movements_by_plan_and_states_over_time(self):
        self.business()
        Mrr = self.env["saas.mrr.report"]
        march = Mrr._read_group([("date", ">=", MAR), ("date", "<", APR)], ["movement"],
                                ["mrr_change:sum"])
        self.assertEqual(dict(march), {"contraction": -50.0, "churn": -24.17})
        by_plan = Mrr._read_group([], ["plan_id"], ["new_mrr:sum", "expansion_mrr:sum"])
        self.assertEqual({plan.code: (new, up) for plan, new, up in by_plan}, {
            "starter": (82.17, 0.0),  # A, B and C started on Starter...
            "professional": (0.0, 50.0),  # ...A's upgrade is Professional's
        })
        self.assertEqual(self.states_on(date(2026, 2, 28)), {"active": 3, "trial": 1})
        self.assertEqual(self.states_on(date(2026, 3, 31)), {"active": 2, "cancelled": 2})

    def states_on(self, day):
        rows = self.env["saas.subscription.state.report"]._read_group(
            [("date", "<=", day)], ["state"], ["count_change:sum"])
        return {state: count for state, count in rows if count}

    def test_mrr_in_the_company_currency_at_the_rate_of_its_day(self):
        foreign = self.env.ref("base.CHF") if self.env.company.currency_id.name != "CHF" else (
            self.env.ref("base.EUR"))
        foreign.active = True
        self.env["res.currency.rate"].create([
            {"currency_id": foreign.id, "name": JAN, "rate": 2.0},
            {"currency_id": foreign.id, "name": FEB, "rate": 4.0}])
        plan = self.plan.copy({"code": "fx", "currency_id": foreign.id})
        sub = self.subscribe("rep-fx", plan_id=plan.id)
        log = sub.log_ids
        self.assertEqual((log.mrr_after, log.currency_id), (29.0, foreign))
        self.assertEqual(log.mrr_change_company, 14.5, "29 at 2 per company unit on 10 Jan")
        with freeze_time("2026-02-10"):
            sub.action_cancel()
        self.assertEqual(sub.log_ids.sorted("id")[-1].mrr_change_company, -14.5,
                         "the churn takes out what was counted, whatever today's rate (4)")
        self.assertEqual(self.kpi(FEB).mrr, 0.0)
