import collections
import json
import time
from datetime import timedelta
from unittest.mock import patch

import psycopg2

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.modules.registry import Registry
from odoo.tests import TransactionCase, tagged
from odoo.tools import config, mute_logger

from .. import startup
from ..engine import pg
from ..models.saas_instance_provisioning import PROVISION_STEPS
from ..models.saas_operation import LOCK_KEYS
from .common import OPERATION_LOGGER, ClonedTemplateCase, LiveInstanceCase, free_port


def make_due(operation):
    """Move a retry's time into the past, as waiting would."""
    operation.sudo().next_run_at = fields.Datetime.now() - timedelta(seconds=1)


@tagged("post_install", "-at_install")
class TestOperationRetries(ClonedTemplateCase):
    """A failure that goes away by itself (the serving Odoo not answering) is retried
    with a growing delay, then succeeds without an operator."""

    def test_unreachable_server_is_retried_with_backoff_then_succeeds(self):
        self.env["saas.settings"]._set("saas.operation_retry_seconds", 30)
        instance = self.new_instance()
        before = self.databases()
        closed = "http://127.0.0.1:%s" % free_port()  # nothing listens there
        with patch.dict(config.options, {"saas_odoo_url": closed}):
            instance.action_provision()
            self.run_operations()
            operation = self.last_operation(instance, "provision")
            self.assertEqual((operation.state, operation.attempt, operation.retryable),
                             ("queued", 1, True))
            self.assertIn("did not answer", operation.error)
            self.assertEqual(instance.state, "provisioning", "no operator needed")
            self.assertEqual(self.databases(), before, "the attempt was undone")
            first_delay = (operation.next_run_at - fields.Datetime.now()).total_seconds()
            self.assertAlmostEqual(first_delay, 30, delta=5)

            self.run_operations()
            self.assertEqual(operation.attempt, 1, "not due yet: not run again")
            make_due(operation)
            self.run_operations()
            self.assertEqual((operation.state, operation.attempt), ("queued", 2))
            second_delay = (operation.next_run_at - fields.Datetime.now()).total_seconds()
            self.assertAlmostEqual(second_delay, 60, delta=5)
        make_due(operation)
        self.run_operations()  # the server answers again
        self.assertEqual((operation.state, operation.attempt), ("done", 3))
        self.assertEqual(instance.state, "active", operation.error)
        self.assertFalse(operation.error)
        failed = operation.step_ids.filtered(lambda s: s.state == "failed")
        self.assertEqual(failed.mapped("attempt"), [1, 2])
        self.assertEqual(set(failed.mapped("name")), {"customize"})
        done = operation.step_ids.filtered(lambda s: s.attempt == 3)
        self.assertEqual(done.mapped("name"), list(PROVISION_STEPS))
        self.assertEqual(self.databases() - before, {instance.database_name})

    def test_retries_stop_after_the_last_attempt(self):
        self.env["saas.settings"]._set("saas.operation_max_attempts", 1)
        instance = self.new_instance()
        with patch.dict(config.options, {"saas_odoo_url": "http://127.0.0.1:%s" % free_port()}), \
                mute_logger(OPERATION_LOGGER):
            instance.action_provision()
            self.run_operations()
        operation = self.last_operation(instance)
        self.assertEqual((operation.state, operation.retryable), ("failed", False))
        self.assertEqual(instance.state, "failed")
        self.assertIn("did not answer", instance.operation_error)


@tagged("post_install", "-at_install")
class TestOperationRunner(LiveInstanceCase):
    """The one runner: records, order, locks, buttons, notifications."""

    def test_suspension_and_reactivation_are_recorded_with_their_steps(self):
        instance = self.make_live_instance("opsrec")
        suspension = instance._suspend("manual")
        self.assertEqual((suspension.kind, suspension.state, suspension.attempt),
                         ("suspend", "done", 1))
        self.assertEqual(suspension.params, {"reason": "manual"})
        self.assertEqual(suspension.step_ids.mapped("name"), ["block"])
        self.assertFalse(self.connections_allowed(instance))
        reactivation = instance._reactivate()
        self.assertEqual((reactivation.state, instance.state), ("done", "active"))
        self.assertEqual(instance.operation_count, 2)
        self.assertEqual(self.last_operation(instance), reactivation)

    def test_asking_twice_gives_the_same_open_operation(self):
        instance = self.make_live_instance("opstwice")
        first = instance._terminate()
        self.assertEqual(first.state, "queued", "terminations are left to the runner")
        self.assertEqual(instance._terminate(), first)
        self.run_operations()
        self.assertEqual((first.state, instance.state), ("done", "terminated"))
        self.assertEqual(first.step_ids.mapped("name"), ["backup", "drop", "proxy"])

    def wait_for_lock_release(self, instance, timeout=10):
        """A closed connection's backend ends (and frees its locks) a moment later."""
        deadline = time.monotonic() + timeout
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            while time.monotonic() < deadline:
                cr.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND classid = %s AND objid = %s AND granted",
                           [LOCK_KEYS["saas.instance"], instance.id])
                if not cr.fetchone()[0]:
                    return
                time.sleep(0.05)
        self.fail("the advisory lock of a closed connection was not released")

    def test_a_locked_target_waits_and_order_is_kept(self):
        instance = self.make_live_instance("opslock")
        holder = psycopg2.connect(dbname=self.env.cr.dbname, **self.pg_params)
        self.addCleanup(holder.close)
        with holder.cursor() as cr:  # another worker is busy with this instance
            cr.execute("SELECT pg_advisory_lock(%s, %s)",
                       [LOCK_KEYS["saas.instance"], instance.id])
        suspension = instance._suspend("manual")
        self.assertEqual(suspension.state, "queued", "busy target: left to the runner")
        self.assertTrue(self.connections_allowed(instance))
        termination = instance._terminate()
        self.run_operations()
        self.assertEqual((suspension.state, termination.state), ("queued", "queued"))
        holder.close()
        self.wait_for_lock_release(instance)
        self.run_operations()
        self.assertEqual((suspension.state, termination.state), ("done", "done"))
        self.assertLessEqual(suspension.ended_at, termination.started_at, "in asked order")
        self.assertEqual(instance.state, "terminated")

    def test_the_callers_defaults_do_not_reach_the_operation(self):
        """Opened from a template's Instances button, the context carries
        default_template_id: the operation still has its one target."""
        instance = self.make_live_instance("opsctx")
        operation = instance.with_context(default_template_id=instance.template_id.id,
                                          default_state="failed")._suspend("manual")
        self.assertEqual((operation.state, operation.instance_id, operation.template_id),
                         ("done", instance, self.env["saas.template"]))
        self.assertEqual(self.env["saas.operation"].name_search(instance.name)[0][0],
                         operation.id)

    def test_an_interrupted_run_is_resumed(self):
        """Found running, not waiting and not locked: its worker died; run it again."""
        instance = self.make_live_instance("opsresume")
        operation = self.env["saas.operation"]._queue(instance, "suspend", {"reason": "manual"})
        operation.sudo().write({"state": "running", "attempt": 1, "step": "block"})
        self.run_operations()
        self.assertEqual((operation.state, operation.attempt), ("done", 2))
        self.assertEqual(operation.step_ids.mapped("name"), ["interrupted", "block"])
        self.assertEqual(instance.state, "suspended")

    def test_a_run_interrupted_at_every_attempt_stops(self):
        instance = self.make_live_instance("opskilled")
        operation = self.env["saas.operation"]._queue(instance, "suspend", {"reason": "manual"})
        operation.sudo().write({"state": "running", "attempt": operation.max_attempts,
                                "step": "block"})
        with mute_logger(OPERATION_LOGGER):
            self.run_operations()
        self.assertEqual((operation.state, operation.retryable), ("failed", False))
        self.assertIn("Interrupted at each", operation.error)
        self.assertEqual(instance.state, "active", "not run again")

    def test_a_fatal_failure_waits_for_an_operator(self):
        instance, operation = self.failed_termination("opsfatal")
        self.assertEqual((operation.state, operation.retryable), ("failed", False))
        self.assertIn("marker", operation.error)
        self.assertEqual(instance.state, "active")
        self.assertTrue(self.database_exists(instance), "nothing dropped")
        with self.assertRaises(AccessError):
            operation.with_user(self.saas_user).action_retry()
        with pg.maintenance(self.pg_params) as conn:
            pg.set_comment(conn, instance.database_name, instance._owner_marker())
        operation.with_user(self.saas_manager).action_retry()
        self.assertEqual(operation.state, "queued")
        self.run_operations()
        self.assertEqual((operation.state, operation.attempt), ("done", 2))
        self.assertEqual(instance.state, "terminated")

    def test_cancel_only_what_has_not_run(self):
        instance = self.make_live_instance("opscancel")
        operation = instance._terminate()
        operation.with_user(self.saas_manager).action_cancel()
        self.assertEqual(operation.state, "cancelled")
        self.run_operations()
        self.assertEqual(instance.state, "active", "a cancelled operation never runs")
        with self.assertRaises(UserError):
            instance._suspend("manual").action_cancel()  # done already

    def test_operations_are_written_by_the_runner_only(self):
        instance = self.make_live_instance("opsprotect")
        operation = instance._suspend("manual")
        for values in ({"state": "queued"}, {"error": "x"}, {"attempt": 0}):
            with self.subTest(values=values), self.assertRaises(AccessError):
                operation.with_user(self.saas_admin).write(values)
        with self.assertRaises(AccessError):
            self.env["saas.operation"].with_user(self.saas_manager).create(
                {"kind": "terminate", "instance_id": instance.id})

    def test_the_users_browsers_are_told(self):
        instance = self.make_live_instance("opsbus")
        operation = instance._suspend("manual")
        self.env.cr.precommit.run()  # what a commit would send
        sent = self.env["bus.bus"].sudo().search([("message", "like", "saas_manager.operation")],
                                                 order="id")
        payloads = [json.loads(message)["payload"] for message in sent.mapped("message")]
        mine = [p for p in payloads if p["operation_id"] == operation.id]
        self.assertEqual(mine[-1], {"model": "saas.instance", "id": instance.id,
                                    "operation_id": operation.id, "state": "done",
                                    "step": False})
        channel = json.loads(sent[-1].channel)
        self.assertIn("res.groups", str(channel), "sent to the SaaS users' group")

    def test_protected_fields_are_declared_where_they_are_defined(self):
        protected = self.env["saas.instance"]._saas_protected_fields()
        for name in ("state", "owned_database", "suspension_reason", "user_count",
                     "health_status"):
            self.assertIn(name, protected)
        self.assertNotIn("name", protected)
        instance = self.make_live_instance("opsfields")
        for name in ("suspension_reason", "user_count", "health_status"):
            with self.subTest(field=name), self.assertRaises(AccessError):
                instance.with_user(self.saas_manager).write({name: False})


@tagged("post_install", "-at_install")
class TestThreadedCronLoop(TransactionCase):
    """Odoo's threaded cron loop walks the registry map while jobs run (startup.py)."""

    def test_the_registry_map_can_change_while_it_is_walked(self):
        plain = collections.OrderedDict(a=1, b=2)
        with self.assertRaisesRegex(RuntimeError, "mutated during iteration"):
            for key, _value in plain.items():
                plain.move_to_end(key)  # what a request to another database does
        safe = startup.SnapshotItems(a=1, b=2)
        for key, _value in safe.items():
            safe.move_to_end(key)
            safe["c-%s" % key] = 3  # a database opened meanwhile
            safe.pop("a", None)  # one dropped
        self.assertEqual(set(safe), {"b", "c-a", "c-b"})

    def test_the_server_registry_map_is_protected(self):
        before = dict(Registry.registries.d)
        startup.protect_registry_iteration()
        startup.protect_registry_iteration()  # once is enough, twice changes nothing
        self.assertIsInstance(Registry.registries.d, startup.SnapshotItems)
        self.assertEqual(dict(Registry.registries.d), before)
