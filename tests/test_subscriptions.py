import os
from contextlib import contextmanager
from datetime import date, timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from ..engine import pg
from .common import OPERATION_LOGGER, START, SubscriptionCase

CRON_LOGGER = "odoo.addons.saas_manager.models.saas_lifecycle_mixin"


@tagged("post_install", "-at_install")
class TestSubscriptionLifecycle(SubscriptionCase):
    """Every transition, with fixed dates, acting on real (small) databases."""

    def sent(self, record, xmlid):
        """How many times the template was sent on ``record`` (its chatter)."""
        template = self.env.ref("saas_manager.%s" % xmlid)
        subject = template._render_field("subject", record.ids)[record.id]
        return len(record.message_ids.filtered(lambda m: m.subject == subject))

    # -- activation and invoices ------------------------------------------------------
    def test_monthly_activation_invoices_the_first_period(self):
        sub = self.subscribe("monthly")
        self.assertEqual(sub.state, "active")
        self.assertEqual((sub.period_start, sub.date_end), (START, date(2026, 2, 10)))
        invoice = sub.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.partner_id, self.customer)
        self.assertEqual(invoice.currency_id, self.plan.currency_id)
        self.assertEqual(invoice.amount_untaxed, 29.0)
        self.assertEqual((invoice.saas_period_start, invoice.saas_period_end),
                         (START, date(2026, 2, 9)))
        line = invoice.invoice_line_ids
        self.assertEqual(line.product_id, self.plan.product_id)
        self.assertIn("2026-01-10 to 2026-02-09", line.name)
        self.assertIn("Monthly", line.name)
        self.assertEqual(sub.instance_id.subscription_id, sub)

    def test_yearly_activation_invoices_a_year(self):
        sub = self.subscribe("yearly", period="yearly")
        self.assertEqual(sub.date_end, date(2027, 1, 10))
        self.assertEqual(sub.invoice_ids.amount_untaxed, 290.0)
        self.assertEqual(sub.invoice_ids.saas_period_end, date(2027, 1, 9))

    def test_draft_invoices_when_posting_is_disabled(self):
        self.env["ir.config_parameter"].sudo().set_param("saas.invoice_auto_post", "False")
        sub = self.subscribe("drafted")
        self.assertEqual(sub.invoice_ids.state, "draft")

    def test_trial_invoices_nothing_until_it_ends(self):
        sub = self.subscribe("trial", skip_trial=False)
        self.assertEqual(sub.state, "trial")
        self.assertEqual(sub.trial_end, date(2026, 1, 24))
        self.assertFalse(sub.invoice_ids)
        self.at(date(2026, 1, 23), "_cron_renew", "_cron_expiry")
        self.assertEqual(sub.state, "trial")
        self.assertFalse(sub.invoice_ids)
        self.at(date(2026, 1, 24), "_cron_renew", "_cron_expiry")
        self.assertEqual(sub.state, "active")
        self.assertEqual((sub.period_start, sub.date_end), (date(2026, 1, 24), date(2026, 2, 24)))
        self.assertEqual(sub.invoice_ids.saas_period_start, date(2026, 1, 24))
        self.assertEqual(self.sent(sub, "mail_template_subscription_renewed"), 1)

    def test_trial_notices_then_expiry_without_auto_renew(self):
        sub = self.subscribe("trialend", skip_trial=False, auto_renew=False)
        for day in (17, 18, 21, 21, 23):  # 7, 6, 3, 3 again, 1 day(s) left
            self.at(date(2026, 1, day), "_cron_expiry")
        self.assertEqual(self.sent(sub, "mail_template_trial_ending"), 3)
        self.at(date(2026, 1, 24), "_cron_renew", "_cron_expiry")
        self.assertEqual(sub.state, "expired")
        self.assertFalse(sub.invoice_ids)
        self.assertEqual(sub.instance_id.state, "suspended")
        self.assertFalse(self.connections_allowed(sub.instance_id))

    def test_one_trial_per_customer(self):
        self.subscribe("firsttrial", skip_trial=False)
        second = self.subscribe("secondtrial", skip_trial=False)
        self.assertEqual(second.state, "active", "the customer already had a trial")
        self.assertTrue(second.invoice_ids)

    def test_one_running_subscription_per_instance(self):
        sub = self.subscribe("single")
        other = self.Subscription.create({"instance_id": sub.instance_id.id})
        with self.assertRaisesText(UserError, "already has a running subscription"):
            other.action_activate()

    # -- renewal ----------------------------------------------------------------------------
    def test_renewal_seven_days_before_end_happens_once(self):
        sub = self.subscribe("renew")
        self.at(date(2026, 2, 2), "_cron_renew")
        self.assertEqual(len(sub.invoice_ids), 1, "8 days before the end: not yet")
        self.at(date(2026, 2, 3), "_cron_renew", "_cron_renew")
        self.at(date(2026, 2, 4), "_cron_renew")
        self.assertEqual(len(sub.invoice_ids), 2, "renewed once, whatever the runs")
        renewal = sub.invoice_ids.filtered(lambda m: m.saas_period_start == date(2026, 2, 10))
        self.assertEqual(renewal.saas_period_end, date(2026, 3, 9))
        self.assertEqual(renewal.invoice_date, date(2026, 2, 3))
        self.assertEqual(renewal.invoice_date_due, date(2026, 2, 10), "due when its period starts")
        self.assertEqual(renewal.amount_untaxed, 29.0)
        self.assertEqual((sub.period_start, sub.date_end), (date(2026, 2, 10), date(2026, 3, 10)))
        self.assertEqual(self.sent(sub, "mail_template_subscription_renewed"), 1)
        self.at(date(2026, 2, 10), "_cron_expiry")
        self.assertEqual(sub.state, "active", "renewed subscriptions do not expire")

    def test_yearly_renewal(self):
        sub = self.subscribe("yearrenew", period="yearly")
        self.at(date(2027, 1, 3), "_cron_renew")
        self.assertEqual(sub.date_end, date(2028, 1, 10))
        self.assertEqual(sorted(sub.invoice_ids.mapped("amount_untaxed")), [290.0, 290.0])

    def test_missed_runs_catch_up_every_period(self):
        sub = self.subscribe("catchup")
        self.at(date(2026, 4, 3), "_cron_renew")  # the runs of February and March were missed
        self.assertEqual(sorted(sub.invoice_ids.mapped("saas_period_start")), [
            date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10), date(2026, 4, 10)])
        self.assertEqual(sub.date_end, date(2026, 5, 10))

    # -- expiry, grace, termination ---------------------------------------------------------
    def test_expiring_notices_at_7_3_1_days(self):
        sub = self.subscribe("notice", auto_renew=False)
        self.at(date(2026, 2, 2), "_cron_expiry")
        self.assertEqual(sub.state, "active")
        self.at(date(2026, 2, 3), "_cron_expiry")
        self.assertEqual(sub.state, "expiring")
        for day in (4, 7, 7, 8, 9):
            self.at(date(2026, 2, day), "_cron_expiry")
        self.assertEqual(self.sent(sub, "mail_template_subscription_expiring"), 3)
        self.at(date(2026, 2, 9), "_cron_renew")
        self.assertEqual(len(sub.invoice_ids), 1, "no auto-renewal")

    def test_expiry_suspends_then_grace_terminates_with_backup(self):
        sub = self.subscribe("expire", auto_renew=False, grace_days=5)
        instance = sub.instance_id
        self.at(date(2026, 2, 10), "_cron_expiry")
        self.assertEqual((sub.state, sub.ended_on), ("expired", date(2026, 2, 10)))
        self.assertEqual((instance.state, instance.suspension_reason), ("suspended", "expired"))
        self.assertFalse(self.connections_allowed(instance))
        self.assertEqual(sub.termination_date, date(2026, 2, 15))
        self.at(date(2026, 2, 14), "_cron_expiry")
        self.assertEqual(instance.state, "suspended", "still in the grace period")
        self.assertTrue(self.database_exists(instance))
        self.at(date(2026, 2, 15), "_cron_expiry")
        self.assertEqual((sub.state, instance.state), ("terminated", "terminated"))
        self.assertFalse(self.database_exists(instance))
        final = instance.final_backup_id
        self.assertEqual(final.kind, "final")
        self.assertTrue(final.dump_path.startswith(self.backup_dir))
        # The stamp is the database server's clock, which freeze_time does not move.
        self.assertEqual(final.expires_on, final.stamp.date() + timedelta(days=90))
        self.assertEqual(self.sent(instance, "mail_template_instance_terminated"), 1)

    def test_cancel_at_period_end(self):
        sub = self.subscribe("leaving")
        sub.action_cancel_at_period_end()
        self.at(date(2026, 2, 5), "_cron_renew", "_cron_expiry")
        self.assertEqual((sub.state, len(sub.invoice_ids)), ("expiring", 1))
        self.at(date(2026, 2, 10), "_cron_renew", "_cron_expiry")
        self.assertEqual(sub.state, "cancelled")
        self.assertEqual(sub.instance_id.suspension_reason, "cancelled")

    def test_cancel_now_and_renew_by_hand(self):
        sub = self.subscribe("comeback")
        with freeze_time("2026-01-20"):
            sub.action_cancel()
            self.assertEqual((sub.state, sub.instance_id.state), ("cancelled", "suspended"))
        with freeze_time("2026-01-22"):
            sub.action_renew()
        self.assertEqual(sub.state, "active")
        self.assertEqual((sub.period_start, sub.date_end), (date(2026, 1, 22), date(2026, 2, 22)))
        self.assertEqual(len(sub.invoice_ids), 2)
        self.assertEqual(sub.instance_id.state, "active")
        self.assertTrue(self.connections_allowed(sub.instance_id))

    def test_manual_suspend_and_reactivate(self):
        sub = self.subscribe("manual")
        with freeze_time("2026-01-15"):
            sub.with_user(self.saas_manager).action_suspend()
            self.assertEqual(sub.instance_id.suspension_reason, "manual")
            self.assertFalse(self.connections_allowed(sub.instance_id))
            sub.with_user(self.saas_manager).action_reactivate()
        self.assertEqual((sub.state, sub.instance_id.state), ("active", "active"))
        self.assertTrue(self.connections_allowed(sub.instance_id))
        self.assertEqual(self.sent(sub.instance_id, "mail_template_instance_reactivated"), 1)
        with freeze_time("2026-01-16"), self.assertRaisesText(AccessError, "not allowed"):
            sub.with_user(self.saas_user).action_suspend()
        with freeze_time("2026-01-17"):
            sub.action_suspend()
            with self.assertRaisesText(UserError, "Only expired or cancelled"):
                sub.action_renew()  # its paid period still runs: no second bill

    def test_reactivation_after_the_period_is_refused(self):
        sub = self.subscribe("late")
        with freeze_time("2026-01-15"):
            sub.action_suspend()
        with freeze_time("2026-02-11"), self.assertRaisesText(UserError, "renew it instead"):
            sub.action_reactivate()

    def test_lifecycle_fields_are_not_writable(self):
        sub = self.subscribe("guarded")
        with self.assertRaisesText(AccessError, "managed by SaaS Manager"):
            sub.with_user(self.saas_manager).write({"date_end": date(2030, 1, 1)})
        with self.assertRaisesText(AccessError, "managed by SaaS Manager"):
            sub.with_user(self.saas_manager).write({"state": "active"})
        with self.assertRaisesText(UserError, "use Change Plan"):
            sub.with_user(self.saas_manager).write({"price": 1.0})
        with self.assertRaisesText(UserError, "use Change Plan"):
            sub.instance_id.with_user(self.saas_manager).write({"plan_id": self.professional.id})
        with self.assertRaisesText(AccessError, "managed by SaaS Manager"):
            sub.instance_id.with_user(self.saas_manager).write({"subscription_id": False})

    # -- payments ---------------------------------------------------------------------------
    def test_unpaid_invoice_suspends_after_grace_and_payment_reactivates(self):
        sub = self.subscribe("unpaid", paid=False)
        invoice = sub.invoice_ids
        self.assertEqual(invoice.invoice_date_due, START)
        self.at(date(2026, 1, 11), "_cron_expiry")
        self.at(date(2026, 1, 12), "_cron_expiry")
        self.assertEqual(self.sent(sub, "mail_template_payment_overdue"), 1, "told once")
        self.assertEqual(sub.state, "active")
        self.at(date(2026, 1, 17), "_cron_expiry")
        self.assertEqual(sub.state, "active", "due date + 7 grace days is not over yet")
        self.at(date(2026, 1, 18), "_cron_expiry")
        self.assertEqual(sub.state, "suspended")
        self.assertEqual(sub.instance_id.suspension_reason, "unpaid")
        self.assertFalse(self.connections_allowed(sub.instance_id))
        with freeze_time("2026-01-19"):
            self.pay(invoice)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        cron = self.env.ref("saas_manager.ir_cron_saas_expiry")
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]),
                        "a payment wakes the expiry cron")
        self.at(date(2026, 1, 19), "_cron_expiry")
        self.assertEqual((sub.state, sub.instance_id.state), ("active", "active"))
        self.assertTrue(self.connections_allowed(sub.instance_id))

    def test_paid_invoices_never_suspend(self):
        sub = self.subscribe("paid")
        self.assertIn(sub.invoice_ids.payment_state, ("paid", "in_payment"))
        self.at(date(2026, 2, 1), "_cron_expiry")
        self.assertEqual(sub.state, "active")
        self.assertEqual(self.sent(sub, "mail_template_payment_overdue"), 0)

    # -- plan changes -------------------------------------------------------------------------
    def test_upgrade_is_immediate_and_billed_pro_rata(self):
        sub = self.subscribe("upgrade")  # 2026-01-10 .. 2026-02-10: 31 days
        timing, amount = self.change(sub, self.professional, day=date(2026, 1, 20))
        self.assertEqual(timing, "now")
        self.assertAlmostEqual(amount, round((79.0 - 29.0) * 21 / 31, 2))
        prorata = sub.invoice_ids.filtered(lambda m: m.saas_invoice_kind == "prorata")
        self.assertEqual(prorata.amount_untaxed, amount)
        self.assertEqual((prorata.saas_period_start, prorata.saas_period_end),
                         (date(2026, 1, 20), date(2026, 2, 9)))
        self.assertEqual((sub.plan_id, sub.price), (self.professional, 79.0))
        self.assertEqual(sub.instance_id.plan_id, self.professional, "limits follow at once")
        self.at(date(2026, 2, 3), "_cron_renew")
        self.assertEqual(sub.last_invoice_id.amount_untaxed, 79.0)

    def test_downgrade_and_period_change_wait_for_renewal(self):
        sub = self.subscribe("downgrade", plan_id=self.professional.id)
        timing, amount = self.change(sub, self.plan, period="yearly", day=date(2026, 1, 20))
        self.assertEqual((timing, amount), ("renewal", 0.0))
        self.assertEqual((sub.plan_id, sub.period), (self.professional, "monthly"))
        self.assertEqual((sub.next_plan_id, sub.next_period), (self.plan, "yearly"))
        self.at(date(2026, 2, 3), "_cron_renew")
        self.assertEqual((sub.plan_id, sub.period, sub.price), (self.plan, "yearly", 290.0))
        self.assertEqual(sub.date_end, date(2027, 2, 10))
        self.assertEqual(sub.last_invoice_id.amount_untaxed, 290.0)
        self.assertEqual(sub.instance_id.plan_id, self.plan)
        self.assertFalse(sub.next_plan_id)

    def test_trial_plan_change_is_free_and_immediate(self):
        sub = self.subscribe("trialplan", skip_trial=False)
        self.assertEqual(self.change(sub, self.professional), ("now", 0.0))
        self.assertEqual(sub.plan_id, self.professional)
        self.assertFalse(sub.invoice_ids)

    # -- crons keep going ---------------------------------------------------------------------
    def test_one_failing_subscription_does_not_stop_the_cron(self):
        broken_plan = self.plan.copy({"code": "broken", "product_id": False})
        broken = self.subscribe("broken", plan_id=broken_plan.id, activate=False,
                                skip_trial=False)
        with freeze_time(START):
            broken.action_activate()  # a trial: no invoice needed yet
        healthy = self.subscribe("healthy")
        with mute_logger(CRON_LOGGER):
            self.at(date(2026, 2, 3), "_cron_renew")
        self.assertEqual(broken.state, "trial", "its renewal failed and was rolled back")
        self.assertIn("has no invoice product", broken.message_ids[0].body)
        self.assertEqual(len(healthy.invoice_ids), 2, "the other one was renewed")

    # -- review cases -------------------------------------------------------------------------
    def test_settings_keep_off_and_zero(self):
        self.env["res.config.settings"].create({
            "saas_invoice_auto_post": False, "saas_payment_grace_days": 0,
            "saas_limit_suspend_days": 0}).execute()
        self.assertEqual(self.Subscription._billing_params(),
                         {"auto_post": False, "payment_grace_days": 0})
        self.assertEqual(self.env["saas.instance"]._limit_policy()["days"], 0)
        sub = self.subscribe("keptoff", paid=False)
        self.assertEqual(sub.invoice_ids.state, "draft")

    def test_billing_day_does_not_drift(self):
        sub = self.subscribe("monthend", date_start=date(2026, 1, 31))
        self.assertEqual(sub.date_end, date(2026, 2, 28))
        self.at(date(2026, 2, 21), "_cron_renew")
        self.assertEqual((sub.period_start, sub.date_end), (date(2026, 2, 28), date(2026, 3, 31)))
        self.at(date(2026, 3, 24), "_cron_renew")
        self.assertEqual(sub.date_end, date(2026, 4, 30))

    def test_an_old_ended_subscription_never_terminates_a_newer_ones_instance(self):
        old = self.subscribe("takeover", auto_renew=False, grace_days=3)
        instance = old.instance_id
        self.at(date(2026, 2, 10), "_cron_expiry")
        self.assertEqual((old.state, instance.state), ("expired", "suspended"))
        new = self.Subscription.create({"instance_id": instance.id, "skip_trial": True,
                                        "date_start": date(2026, 2, 11)})
        self.paying[new] = True
        with freeze_time("2026-02-11"):
            new.action_activate()
            self.pay_due(new)
        self.assertEqual((instance.state, instance.subscription_id), ("active", new))
        self.at(date(2026, 2, 14), "_cron_expiry")
        self.assertEqual((old.state, new.state, instance.state),
                         ("expired", "active", "active"))
        self.assertTrue(self.database_exists(instance))

    def test_termination_resumes_after_a_lost_transaction(self):
        sub = self.subscribe("resume", auto_renew=False, grace_days=0)
        instance = sub.instance_id
        self.at(date(2026, 2, 10), "_cron_expiry")
        with self.transaction_lost_after_the_drop(instance):
            self.at(date(2026, 2, 11), "_cron_expiry")
        self.assertEqual(instance.state, "suspended", "the step was rolled back")
        self.assertFalse(self.database_exists(instance), "after the drop")
        final = instance.final_backup_id
        self.assertTrue(final, "the backup step's commit kept its record")
        self.retry_termination(instance)
        self.assertEqual((sub.state, instance.state), ("terminated", "terminated"))
        self.assertEqual(instance.backup_ids, final, "completed with it, no second backup")
        final._saas_verify()

    def retry_termination(self, instance):
        """The operator's Retry of the failed termination, then the runner."""
        operation = instance.operation_ids.filtered(lambda op: op.kind == "terminate")[:1]
        self.assertEqual(operation.state, "failed")
        operation.action_retry()
        self.env["saas.operation"]._cron_run()
        return operation

    @contextmanager
    def transaction_lost_after_the_drop(self, instance):
        """The termination fails after the drop (its mail server is down) and its
        transaction is rolled back, except what the backup step committed: a test cannot
        commit, so the backup records are written again as that commit would have kept
        them."""
        original = type(instance)._notify
        committed = []

        def mail_down(records, xmlid):
            if xmlid.endswith("instance_terminated"):
                raise RuntimeError("mail server down")
            return original(records, xmlid)

        def commit(records):
            committed[:] = records.env["saas.backup"].sudo().search(
                [("instance_id", "=", instance.id)]).copy_data()

        with patch.object(type(instance), "_notify", mail_down), \
                patch.object(type(instance), "_commit", commit), \
                mute_logger(CRON_LOGGER, OPERATION_LOGGER):
            yield
        self.assertTrue(committed, "the backup was committed before the drop")
        self.assertFalse(instance.backup_ids, "rolled back with the rest of the attempt")
        self.env["saas.backup"].sudo().create(committed)
        instance.invalidate_recordset()

    def test_resume_without_the_backup_files_fails_clearly_and_removes_nothing(self):
        sub = self.subscribe("lostfiles", auto_renew=False, grace_days=0)
        instance = sub.instance_id
        filestore = config.filestore(instance.database_name)
        os.makedirs(filestore)
        with open(os.path.join(filestore, "attachment"), "wb") as handle:
            handle.write(b"customer file")
        self.at(date(2026, 2, 10), "_cron_expiry")

        def drop_only(records):
            """The drop, and the worker dies before the filestore is removed."""
            with pg.maintenance(self.pg_params) as conn:
                pg.drop(conn, records.database_name)

        with patch.object(type(instance), "_provision_remove_database", drop_only), \
                self.transaction_lost_after_the_drop(instance):
            self.at(date(2026, 2, 11), "_cron_expiry")
        final = instance.final_backup_id
        with open(final.dump_path, "rb") as handle:
            dump = handle.read()
        for damage, reason in ((self.truncate, r"has \d+ bytes, \d+ were recorded"),
                               (self.flip_a_byte, "does not match its checksum"),
                               (os.remove, "is missing")):
            with self.subTest(damage=damage.__name__):
                with open(final.dump_path, "wb") as handle:
                    handle.write(dump)
                damage(final.dump_path)
                with mute_logger(OPERATION_LOGGER):
                    operation = self.retry_termination(instance)
                self.assertEqual(operation.state, "failed")
                self.assertRegex(operation.error, "no longer exists and its final backup .* "
                                                  "cannot be relied upon: .*" + reason)
                self.assertEqual(instance.state, "suspended")
                self.assertTrue(os.path.isfile(os.path.join(filestore, "attachment")),
                                "nothing more is removed")
                self.assertEqual(instance.backup_ids, final, "no new backup (of nothing)")
        with open(final.dump_path, "wb") as handle:
            handle.write(dump)
        self.retry_termination(instance)  # the files found again: it completes
        self.assertEqual(instance.state, "terminated")
        self.assertFalse(os.path.exists(filestore))

    @staticmethod
    def truncate(path):
        with open(path, "r+b") as handle:
            handle.truncate(os.path.getsize(path) - 1)

    @staticmethod
    def flip_a_byte(path):
        with open(path, "r+b") as handle:
            handle.seek(0)
            first = handle.read(1)
            handle.seek(0)
            handle.write(bytes([first[0] ^ 0xFF]))

    def test_overdue_invoice_of_an_instance_suspended_by_hand(self):
        sub = self.subscribe("quiet", paid=False)
        with freeze_time("2026-01-12"):
            sub.instance_id.action_suspend()
        self.at(date(2026, 1, 20), "_cron_expiry")
        self.assertEqual(sub.state, "suspended")
        self.assertEqual(sub.instance_id.suspension_reason, "manual")
        self.assertFalse(sub.message_ids.filtered(lambda m: "failed" in str(m.body)))

    def test_invoice_links_are_written_by_the_module_only(self):
        sub = self.subscribe("links", paid=False)
        other = self.env["account.move"].create({"move_type": "out_invoice",
                                                 "partner_id": self.customer.id})
        with self.assertRaisesText(AccessError, "managed by SaaS Manager"):
            other.with_user(self.saas_manager).write({"saas_subscription_id": sub.id})
        with self.assertRaisesText(AccessError, "managed by SaaS Manager"):
            self.env["account.move"].with_user(self.saas_manager).create({
                "move_type": "out_invoice", "partner_id": self.customer.id,
                "saas_subscription_id": sub.id})

    def test_only_managers_terminate_and_they_confirm_it(self):
        instance = self.make_live_instance("acl")
        with self.assertRaises(AccessError):
            self.env["saas.instance.terminate"].with_user(self.saas_user).create(
                {"instance_id": instance.id, "confirmation": "acl"})
        wizard = self.env["saas.instance.terminate"].with_user(self.saas_manager).create(
            {"instance_id": instance.id, "confirmation": "acl"})
        wizard.action_confirm()
        self.assertEqual(instance.state, "active", "queued: the runner terminates it")
        self.run_operations()
        self.assertEqual(instance.state, "terminated")
        self.assertFalse(self.database_exists(instance))
        self.assertTrue(os.path.isfile(instance.final_backup_id.dump_path))
        self.assertEqual(instance.with_user(self.saas_manager).final_backup_id,
                         instance.final_backup_id)
        with self.assertRaises(AccessError):
            instance.final_backup_id.with_user(self.saas_user).read(["dump_path"])

    def test_activation_gives_the_instance_the_subscription_plan(self):
        instance = self.make_live_instance("planned")
        sub = self.Subscription.create({"instance_id": instance.id, "skip_trial": True,
                                        "plan_id": self.professional.id})
        sub.action_activate()
        self.assertEqual(instance.plan_id, self.professional, "limits follow what is billed")

    def test_non_payment_takes_over_a_limits_suspension(self):
        sub = self.subscribe("overlimit", paid=False)
        instance = sub.instance_id
        with freeze_time("2026-01-11"):
            instance._suspend("user_limit")
        self.at(date(2026, 1, 18), "_cron_expiry")
        self.assertEqual((sub.state, instance.suspension_reason), ("suspended", "unpaid"))
        with freeze_time("2026-01-19"):
            self.pay(sub.invoice_ids)
        self.at(date(2026, 1, 19), "_cron_expiry")
        self.assertEqual((sub.state, instance.state), ("active", "active"))
