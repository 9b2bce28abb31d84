import threading
import time
from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.addons.bus.websocket import WebsocketConnectionHandler
from odoo.tests import HttpCase, tagged

from .common import ClonedTemplateCase

#: Seconds between the button and the runner taking the operation (a cron worker's
#: latency), so the tour can see the form in its Provisioning state first.
PICKUP_DELAY = 2


@tagged("post_install", "-at_install")
class TestBackendUi(HttpCase):
    """The app and its views in a real browser (Chromium), without JS errors."""

    def test_backend_tour(self):
        self.start_tour("/odoo", "saas_manager_backend_tour", login="admin")


@tagged("post_install", "-at_install")
class TestProvisionUi(ClonedTemplateCase):
    """The operator provisions from the form in Chromium and watches it become Active.

    The browser gets the operation's bus notifications through a real websocket
    (which Odoo turns off in tests: turned on here, as Odoo's own bus tests do).
    The runner, which a cron worker would run, runs in a thread of the test once
    the button queued the operation; the test transaction never commits, so the
    thread sends the bus notifications a commit would send.
    """

    def test_provision_from_the_form(self):
        self.startPatcher(patch.object(WebsocketConnectionHandler, "websocket_allowed",
                                       return_value=True))
        instance = self.new_instance()
        done = threading.Event()
        runner = threading.Thread(target=self.run_when_queued, args=(instance.id, done))
        runner.start()
        try:
            self.start_tour("/odoo/action-saas_manager.action_saas_instance/%d" % instance.id,
                            "saas_manager_provision_tour", login="admin", timeout=180)
        finally:
            done.set()
            runner.join(120)
        self.assertEqual(instance.state, "active", self.op_error(instance))

    def run_when_queued(self, instance_id, done):
        threading.current_thread().testing = True  # savepoints, no commits
        deadline = time.monotonic() + 120
        while not self.queued(instance_id):
            if done.is_set() or time.monotonic() > deadline:
                return
            time.sleep(0.2)
        time.sleep(PICKUP_DELAY)  # the tour first sees the form provisioning
        with self.registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {})["saas.operation"]._cron_run()
            cr.flush()
            cr.precommit.run()
            cr.postcommit.run()  # what a commit sends: the bus notifications

    def queued(self, instance_id):
        with self.registry.cursor() as cr:
            return api.Environment(cr, SUPERUSER_ID, {})["saas.operation"].search_count(
                [("instance_id", "=", instance_id), ("state", "=", "queued")])
