from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import config

from .common import SaasCase


@tagged("post_install", "-at_install")
class TestSecrets(SaasCase):
    """Template admin passwords are Fernet-encrypted under the server's key."""

    def test_password_is_encrypted_at_rest(self):
        self.template.admin_password = "correct horse"
        self.env.flush_all()
        self.env.cr.execute("SELECT admin_password_encrypted FROM saas_template WHERE id = %s",
                            [self.template.id])
        stored = self.env.cr.fetchone()[0]
        self.assertTrue(stored.startswith("gAAAA"), "a Fernet token")
        self.assertNotIn("correct horse", stored)
        self.template.invalidate_recordset()
        self.assertEqual(self.template.admin_password, "correct horse")

    def test_missing_key_is_a_clear_error(self):
        self.patch(config, "options", dict(config.options, saas_manager_key=""))
        self.patch(type(self.env["saas.template"]), "_server_key", lambda self: "")
        with self.assertRaisesText(UserError, "saas_manager_key"):
            self.template.admin_password = "x"

    def test_wrong_key_is_a_clear_error_but_forms_still_open(self):
        self.template.admin_password = "before rotation"
        self.env.flush_all()
        self.template.invalidate_recordset()
        other_key = "A" * 43 + "="
        self.patch(type(self.env["saas.template"]), "_server_key", lambda self: other_key)
        self.assertEqual(self.template.admin_password, "", "unreadable, not a crash")
        with self.assertRaisesText(UserError, "cannot be decrypted"):
            self.template._decrypt(self.template.admin_password_encrypted)
