from odoo.tests import new_test_user, tagged

from ..engine import health, pg
from .common import LiveInstanceCase


@tagged("post_install", "-at_install")
class TestIncidents(LiveInstanceCase):
    """One incident per problem: one activity and one e-mail when it opens, one
    recovery notice when it goes away, whatever the number of sightings between."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.on_call = new_test_user(cls.env, "saas_on_call", "saas_manager.group_saas_manager",
                                    email="on-call@manager.test", notification_type="email")
        cls.Incident = cls.env["saas.incident"]

    def mails(self, marker):
        """E-mails notified to the on-call manager (the mails themselves are sent and
        deleted at once; their notifications stay)."""
        return self.env["mail.notification"].search([
            ("notification_type", "=", "email"),
            ("res_partner_id", "=", self.on_call.partner_id.id),
            ("mail_message_id.subject", "like", marker)])

    def incidents(self, target, kind):
        return self.Incident.search([("res_model", "=", target._name),
                                     ("res_id", "=", target.id), ("kind", "=", kind)])

    def record(self, instance, up, checks=1):
        for _check in range(checks):
            instance._record_health(health.Result(instance.id, up, response_ms=40 if up else None,
                                                  error=None if up else "refused"),
                                    "2026-12-01 10:00:00", 3)

    def test_down_after_n_checks_once_per_incident_then_recovery(self):
        instance = self.make_instance("incdown", user_id=self.saas_user.id)
        self.record(instance, False, 2)
        self.assertFalse(self.incidents(instance, "down"), "2 failures of 3: no alert yet")
        self.record(instance, False, 5)
        incident = self.incidents(instance, "down")
        self.assertEqual((len(incident), incident.state, incident.user_id),
                         (1, "open", self.saas_user))
        self.assertEqual(len(self.mails("[SaaS incident]")), 1, "one e-mail per incident")
        todo = instance.activity_ids.filtered(lambda a: "is down" in a.summary)
        self.assertEqual((len(todo), todo.user_id, incident.activity_id),
                         (1, self.saas_user, todo))
        todo.summary = "Call the hosting company"  # the responsible's own words

        self.record(instance, True)
        self.assertEqual(incident.state, "resolved")
        self.assertTrue(incident.resolved_at)
        self.assertEqual(len(self.mails("[SaaS recovered]")), 1, "one recovery notice")
        self.assertFalse(instance.activity_ids, "the to-do is marked done")
        self.record(instance, True, 3)
        self.assertEqual(len(self.mails("[SaaS recovered]")), 1, "recovered once")

        self.record(instance, False, 3)
        self.assertEqual(len(self.incidents(instance, "down")), 2, "a new outage, a new one")
        self.assertEqual(len(self.mails("[SaaS incident]")), 2)

    def test_failed_operation_opens_and_the_next_success_closes(self):
        instance, operation = self.failed_termination("incop")
        self.assertEqual(operation.state, "failed")
        incident = self.incidents(instance, "operation")
        self.assertEqual((len(incident), incident.state), (1, "open"))
        self.assertIn("Termination", incident.name)
        self.assertIn("marker", incident.details)
        self.assertEqual(len(self.mails("[SaaS incident]")), 1)

        with pg.maintenance(self.pg_params) as conn:
            pg.set_comment(conn, instance.database_name, instance._owner_marker())
        operation.with_user(self.saas_manager).action_retry()
        self.run_operations()
        self.assertEqual((operation.state, incident.state), ("done", "resolved"))
        self.assertEqual(len(self.mails("[SaaS recovered]")), 1)

    def test_limits_incident_follows_the_flags(self):
        instance = self.make_instance("inclimits")
        instance.sudo().write({"user_limit_exceeded": True, "state": "active"})
        instance._limits_incident()
        instance._limits_incident()
        incident = self.incidents(instance, "limits")
        self.assertEqual((len(incident), incident.occurrences), (1, 2))
        instance.sudo().user_limit_exceeded = False
        instance._limits_incident()
        self.assertEqual(incident.state, "resolved")

    def test_a_full_disk_opens_an_incident(self):
        server = self.env["saas.server"]._local()
        self.env["ir.config_parameter"].set_param("saas.disk_alert_percent", 0)
        server._measure_disk()
        self.assertGreater(server.disk_total_mb, server.disk_free_mb)
        self.assertGreater(server.disk_free_mb, 0)
        incident = self.incidents(server, "disk")
        self.assertEqual((len(incident), incident.state), (1, "open"))
        self.env["ir.config_parameter"].set_param("saas.disk_alert_percent", 101)
        server._measure_disk()
        self.assertEqual(incident.state, "resolved")

    def test_a_failed_subscription_mail_opens_an_incident_on_it(self):
        instance = self.make_instance("incmail")
        sub = self.env["saas.subscription"].create({"instance_id": instance.id})
        sub._saas_mail_outcome("SMTP refused")
        incident = self.incidents(sub, "mail")
        self.assertEqual((len(incident), incident.instance_id, incident.details),
                         (1, instance, "SMTP refused"))
        sub._saas_mail_outcome(False)
        self.assertEqual(incident.state, "resolved")
