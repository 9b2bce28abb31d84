import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from datetime import date
from unittest.mock import patch

import psycopg2
from freezegun import freeze_time
from psycopg2 import sql

from odoo import sql_db
from odoo.exceptions import ValidationError
from odoo.modules.registry import Registry
from odoo.tests import HttpCase, TransactionCase, new_test_user
from odoo.tools import config, mute_logger

from ..engine import customize, pg, vault


class ServerKeyCase:
    """A saas_manager_key of the test's own, whatever the server's configuration.

    Secrets are encrypted under a key from odoo.conf, which a server running
    the tests need not have; the key is set for the class's duration only.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.startClassPatcher(patch.dict(config.options, {"saas_manager_key": vault.new_key()}))


class NameChecks:
    """Assertions on how bad names are refused."""

    def assertRefusedWithoutQuery(self, call, regex):
        """``call()`` raises ValidationError matching ``regex`` and runs no SQL at all.

        Odoo's assertRaises would open a savepoint (a query), hence the plain try.
        """
        count = self.env.cr.sql_log_count
        try:
            call()
        except ValidationError as exc:
            error = exc
        else:
            self.fail("accepted")
        self.assertEqual(self.env.cr.sql_log_count, count, "a query ran before validation")
        self.assertRegex(str(error), regex)
        self.assertNotIn("\x00", str(error))
        self.assertLess(len(str(error)), 400)
        return error


#: The day the subscriptions of SubscriptionCase start.
START = date(2026, 1, 10)
#: The logger of the operation runner, which logs an operation's fatal failure as an ERROR.
OPERATION_LOGGER = "odoo.addons.saas_manager.models.saas_operation"


class OperationChecks:
    """Run the operation runner as its cron would, and look at what it recorded."""

    def run_operations(self):
        return self.env["saas.operation"]._cron_run()

    def last_operation(self, target, kind=None):
        link = self.env["saas.operation"]._target_field(target)
        domain = [(link, "=", target.id)] + ([("kind", "=", kind)] if kind else [])
        return self.env["saas.operation"].search(domain, order="id desc", limit=1)

    def op_error(self, target):
        """The error of ``target``'s last operation (assertion messages)."""
        return self.last_operation(target).error


class SaasCase(OperationChecks, NameChecks, ServerKeyCase, TransactionCase):
    """Base domain set, one customer, and a user per SaaS group."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("saas.base_domain", "example.com")
        cls.env["ir.config_parameter"].sudo().set_param("saas.routing_mode", "host")
        cls.Instance = cls.env["saas.instance"]
        cls.template = cls.env.ref("saas_manager.template_blank")
        cls.plan = cls.env.ref("saas_manager.plan_starter")
        cls.customer = cls.env["res.partner"].create(
            {"name": "Acme", "email": "owner@acme.test", "is_company": True})
        cls.saas_user = new_test_user(cls.env, "saas_user", "saas_manager.group_saas_user")
        cls.saas_manager = new_test_user(cls.env, "saas_mgr", "saas_manager.group_saas_manager")
        cls.saas_admin = new_test_user(cls.env, "saas_admin", "saas_manager.group_saas_admin")

    @classmethod
    def make_instance(cls, subdomain, partner=None, **values):
        return cls.env["saas.instance"].create({
            "name": subdomain.title(),
            "partner_id": (partner or cls.customer).id,
            "subdomain": subdomain,
            "template_id": cls.template.id,
            "plan_id": cls.plan.id,
            **values,
        })

    @contextmanager
    def assertRaisesText(self, exception, regex):
        """assertRaises (which rolls the failed operation back) plus a message check."""
        with self.assertRaises(exception) as caught:
            yield caught
        self.assertRegex(str(caught.exception), regex)


def free_port():
    """A TCP port nothing listens on, on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_nowhere_in_database(case, cr, needles):
    """Fail if any row of any table of ``cr``'s database contains one of ``needles``.

    Read through the test's own cursor, so uncommitted rows count too (what a
    ``pg_dump`` would hold once the transaction commits).
    """
    cr.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    for (table,) in cr.fetchall():
        for needle in needles:
            cr.execute(sql.SQL("SELECT count(*) FROM {} AS t WHERE strpos(t::text, %s) > 0")
                       .format(sql.Identifier(table)), (needle,))
            case.assertEqual(cr.fetchone()[0], 0, "%r found in table %s" % (needle, table))


class InstanceDatabaseChecks:
    """What PostgreSQL says of an instance's database (``pg_params`` set by the case)."""

    def connections_allowed(self, instance):
        with pg.maintenance(self.pg_params) as conn:
            return pg.connections_allowed(conn, instance.database_name)

    def database_exists(self, instance):
        with pg.maintenance(self.pg_params) as conn:
            return pg.exists(conn, instance.database_name)

    def make_outage(self, instance):
        """An outage the module did not cause: the database refuses connections (until
        the test's cleanup opens it again)."""
        with pg.maintenance(self.pg_params) as conn:
            pg.allow_connections(conn, instance.database_name, False)
            pg.terminate_sessions(conn, instance.database_name)
        self.addCleanup(self.end_outage, instance)

    def end_outage(self, instance):
        with pg.maintenance(self.pg_params) as conn:
            pg.allow_connections(conn, instance.database_name, True)


class LiveInstanceCase(InstanceDatabaseChecks, SaasCase):
    """Instances backed by a real (small, empty) PostgreSQL database.

    Lifecycle transitions act on the database itself (connections refused,
    final backup, drop), so the tests need one; cloning a full Odoo template
    is only needed where the client's Odoo matters (test_lifecycle).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Names under saas.test: the test runner drops any such database left behind.
        cls.env["ir.config_parameter"].sudo().set_param("saas.base_domain", "saas.test")
        cls.pg_params = cls.env["saas.instance"]._saas_pg_params()

    def setUp(self):
        super().setUp()
        self.backup_dir = tempfile.mkdtemp(prefix="saas_backups_")
        self.addCleanup(shutil.rmtree, self.backup_dir, True)
        self.patch(config, "options", {**config.options, "saas_backup_dir": self.backup_dir})

    def failed_termination(self, subdomain):
        """A live instance whose termination failed for good: its database carries
        somebody else's marker, so nothing is dropped.  Returns (instance, operation)."""
        instance = self.make_live_instance(subdomain)
        with pg.maintenance(self.pg_params) as conn:
            pg.set_comment(conn, instance.database_name, "somebody else's")
        operation = instance._terminate()
        with mute_logger(OPERATION_LOGGER):
            self.run_operations()
        return instance, operation

    def make_live_instance(self, subdomain, **values):
        """An active instance whose database exists, carries our marker and holds a row."""
        instance = self.make_instance(subdomain, **values)
        name = instance.database_name
        self.create_small_database(name, "note", "kept in the backup")
        with pg.maintenance(self.pg_params) as conn:
            pg.set_comment(conn, name, instance._owner_marker())
        instance.sudo().write({"state": "active", "owned_database": name})
        return instance

    def create_small_database(self, name, table, row):
        """A real database (from template0, dropped at cleanup) holding one table, one row."""
        self.addCleanup(self.drop_database, name)
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)))
        client = psycopg2.connect(dbname=name, **self.pg_params)
        try:
            with client, client.cursor() as cr:
                cr.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, body text)")
                           .format(sql.Identifier(table)))
                cr.execute(sql.SQL("INSERT INTO {} (body) VALUES (%s)")
                           .format(sql.Identifier(table)), (row,))
        finally:
            client.close()

    def drop_database(self, name):
        with pg.maintenance(self.pg_params) as conn:
            pg.drop(conn, name)
        shutil.rmtree(config.filestore(name), ignore_errors=True)



def build_template_database(name, modules="base", addons_path=None):
    """A real template: a fresh Odoo database built by a separate Odoo process
    (``addons_path``: the server's, or another one)."""
    cmd = [sys.executable, sys.argv[0], "-c", config.rcfile, "-d", name, "-i", modules,
           "--stop-after-init", "--without-demo=all", "--log-level=warn", "--no-http",
           "--addons-path=%s" % (addons_path or config["addons_path"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode:
        raise RuntimeError("building %s failed:\n%s" % (name, proc.stderr[-3000:]))


class SubscriptionCase(LiveInstanceCase):
    """Subscriptions driven through their real lifecycle on fixed dates: started,
    paid, renewed by the crons, changed by the wizard."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Subscription = cls.env["saas.subscription"]
        cls.professional = cls.env.ref("saas_manager.plan_professional")
        cls.env["ir.config_parameter"].sudo().set_param("saas.payment_grace_days", 7)

    def setUp(self):
        super().setUp()
        self.paying = {}

    def subscribe(self, subdomain, activate=True, paid=True, **values):
        """A subscription started on START; its invoices are paid as they come unless
        ``paid`` is False (see :meth:`at`)."""
        instance = self.make_live_instance(subdomain, **{
            key: values.pop(key) for key in ("partner_id",) if key in values})
        sub = self.Subscription.create({"instance_id": instance.id, "date_start": START,
                                        "skip_trial": True, **values})
        self.paying[sub] = paid
        if activate:
            with freeze_time(sub.date_start):
                sub.action_activate()
                self.pay_due(sub)
        return sub

    def pay_due(self, sub):
        if self.paying.get(sub) and sub.unpaid_invoice_ids:
            self.pay(sub.unpaid_invoice_ids)

    def pay(self, invoice):
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids).create({})._create_payments()

    def at(self, day, *crons):
        """Run the given crons as they would run on ``day``, then the operations they
        queued (terminations); paying customers pay what the crons invoiced at once."""
        with freeze_time(day):
            for cron in crons:
                getattr(self.Subscription, cron)()
                self.run_operations()
                for sub in self.paying:
                    self.pay_due(sub)

    def change(self, sub, plan, period=None, day=None):
        """The Change Plan wizard on ``day``; returns its (timing, pro-rata amount)."""
        with freeze_time(day or sub.period_start):
            wizard = self.env["saas.subscription.change"].create({
                "subscription_id": sub.id, "plan_id": plan.id, "period": period or sub.period})
            outcome = (wizard.timing, wizard.prorata_amount)
            wizard.action_confirm()
        return outcome


class ClonedTemplateCase(OperationChecks, InstanceDatabaseChecks, ServerKeyCase, HttpCase):
    """A real template database (base only, built by a separate Odoo) to clone from,
    under the tests' base domain saas.test."""

    #: The modules of the class's template ("mail" also brings auth_signup, and its
    #: free sign-up setting).
    template_modules = "base"
    #: The addons path of the template's build (None: the server's).
    template_addons_path = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg_params = cls.env["saas.instance"]._saas_pg_params()
        cls.tpl_db = "saas_tpl_test_%s" % uuid.uuid4().hex[:8]
        cls.addClassCleanup(cls.drop_databases, [cls.tpl_db])
        build_template_database(cls.tpl_db, cls.template_modules, cls.template_addons_path)
        os.makedirs(config.filestore(cls.tpl_db), exist_ok=True)
        with open(os.path.join(config.filestore(cls.tpl_db), "marker"), "w") as handle:
            handle.write("template file")
        cls.prepare_template()
        cls.template = cls.env["saas.template"].create({
            "name": "Test template", "code": "test_%s" % cls.tpl_db[-8:],
            "database_name": cls.tpl_db, "module_names": cls.template_modules,
            "state": "configuring",
            "admin_login": "admin", "admin_password": "admin", "pool_size": 0})
        cls.template.action_lock()
        set_param = cls.env["ir.config_parameter"].set_param
        set_param("saas.base_domain", "saas.test")
        set_param("saas.routing_mode", "host")
        cls.customer = cls.env["res.partner"].create({
            "name": "Acme Test", "email": "owner@acme.test", "is_company": True,
            "city": "Brussels", "country_id": cls.env.ref("base.be").id})

    @classmethod
    def prepare_template(cls):
        """Hook: look at the template database before it is locked (no connections)."""

    @classmethod
    def drop_databases(cls, names):
        for name in names:
            Registry.delete(name)
            sql_db.close_db(name)
        with pg.maintenance(cls.env["saas.instance"]._saas_pg_params()) as conn:
            for name in names:
                pg.drop(conn, name)
        for name in names:
            shutil.rmtree(config.filestore(name), ignore_errors=True)

    def new_instance(self, **values):
        subdomain = values.pop("subdomain", "t%s" % uuid.uuid4().hex[:8])
        instance = self.env["saas.instance"].create({
            "name": subdomain, "partner_id": self.customer.id, "subdomain": subdomain,
            "template_id": self.template.id,
            "plan_id": self.env.ref("saas_manager.plan_starter").id, **values})
        self.addCleanup(self.drop_databases, [instance.database_name])
        return instance

    def databases(self):
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cr.fetchall()}

    def set_customer_password(self, instance, password="Customer-pass-1"):
        """Choose the customer's password as the customer does: through a welcome link."""
        token = self.env["saas.access.link"]._issue(instance, "welcome", instance.admin_login)
        self.env["saas.instance"]._saas_redeem_welcome(token, password)
        return password

    def rpc_login(self, instance, login, password):
        client = customize.connect("http://127.0.0.1:%s" % config["http_port"], instance.host)
        client.login(instance.database_name, login, password)
        return client


class ServedClonesCase(ClonedTemplateCase):
    """Clones routed by their host only, as in production, with a backup folder of the
    class: the suite's own dbfilter also matches the test database, which would leave
    Odoo two candidates for a client's host (kept as ``suite_dbfilter``, for url_open to
    the test database)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.backup_dir = tempfile.mkdtemp(prefix="saas_backups_")
        cls.addClassCleanup(shutil.rmtree, cls.backup_dir, True)

    def setUp(self):
        super().setUp()
        self.suite_dbfilter = config["dbfilter"]
        self.patch(config, "options", {**config.options, "saas_backup_dir": self.backup_dir,
                                       "dbfilter": "^%h$"})

