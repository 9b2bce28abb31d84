from odoo.tests import HttpCase, tagged


@tagged("post_install", "-at_install")
class TestBackendUi(HttpCase):
    """The app and its views in a real browser (Chromium), without JS errors."""

    def test_backend_tour(self):
        self.start_tour("/odoo", "saas_manager_backend_tour", login="admin")
