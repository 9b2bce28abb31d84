from odoo.tests import tagged
from odoo.tools import config

from ..engine import maintenance
from .common import ServedClonesCase


@tagged("post_install", "-at_install")
class TestMaintenancePage(ServedClonesCase):
    """While its database is being updated a host answers 503 with the maintenance page,
    the database still open to the updating process; the update's own checks get through
    with the pass, and the host serves its Odoo again once the page is withdrawn."""

    def get(self, instance, **headers):
        self.env.flush_all()
        return self.url_open("/web/login", headers={"Host": instance.host, **headers},
                             allow_redirects=False)

    def test_page_then_the_pass_then_odoo_again(self):
        instance = self.new_instance()
        self.assertTrue(instance._provision(), instance.operation_error)
        self.assertEqual(self.get(instance).status_code, 200)
        page = maintenance.render(lang="en", company="SaaS & Co", host=instance.host,
                                  title="Updating your Odoo", body="Back in a few minutes.")
        token = maintenance.publish(config["data_dir"], instance.database_name, page)
        self.addCleanup(maintenance.withdraw, config["data_dir"], instance.database_name)

        blocked = self.get(instance)
        self.assertEqual((blocked.status_code, blocked.headers.get("Retry-After")), (503, "60"))
        self.assertIn("Back in a few minutes.", blocked.text)
        self.assertNotIn("saas-maintenance-pass", blocked.text)
        self.assertTrue(self.connections_allowed(instance), "the update process needs it")
        www = self.url_open("/web/login", headers={"Host": "www." + instance.host},
                            allow_redirects=False)
        self.assertEqual(www.status_code, 503, "every host Odoo maps to the database")
        passed = self.get(instance, **{maintenance.PASS_HEADER: token})
        self.assertEqual(passed.status_code, 200)
        self.assertIn("oe_login_form", passed.text)
        forged = self.get(instance, **{maintenance.PASS_HEADER: token[:-2] + "xx"})
        self.assertEqual(forged.status_code, 503)

        self.assertTrue(maintenance.withdraw(config["data_dir"], instance.database_name))
        self.assertEqual(self.get(instance).status_code, 200)
