import uuid
from functools import partial

from psycopg2 import IntegrityError

from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError, ValidationError
from odoo.service.model import _as_validation_error, retrying
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import SaasCase

#: One of each kind of malformed subdomain; the full generated set is in
#: standalone_tests/test_naming.py.
MALFORMED_SUBDOMAINS = [
    "acme\n", "acme\r\n", "\nacme", "acme\x00", "ac\x00me", "\x00", "ac\tme", "acme\x1b",
    "acme\u2028", "ac\u200dme", "ac\u200bme", "\ufeffacme", "\uff41cme", "\uff11\uff12",
    "a\u0301", "\u0430cme", "xn--acme", "xn--80ak6aa92e", "ab--cd", "Acme", "WWW", " acme",
    "acme ", "acme.", ".acme", "a..b", "%", "a%b", "a_b", "a/b", "a\\b", "a'b", 'a"b', "a;b",
    "x" * 64, "x" * 5000,
]
NOT_TEXT = [5, 0, 1.5, True, ["acme"], {"acme": 1}, ("acme",)]
MALFORMED_DOMAINS = [
    "erp.acme.com\n", "erp.acme.com\x00", "erp\x00.acme.com", "127.0.0.1", "10.0.0.1", "0x7f.1",
    "xn--bcher-kva.de", "ab--cd.acme.com", "erp..acme.com", ".acme.com", "acme.com.",
    "ERP.acme.com", "erp.acme.com ", "erp acme.com", "erp_1.acme.com", "erp.\u0430cme.com",
    "a" * 64 + ".com", ".".join(["a"] * 127) + ".com", "erp.acme.com/x", "erp.acme.com:443",
]


@tagged("post_install", "-at_install")
class TestInstanceNaming(SaasCase):

    def test_host_routing_names_the_database_after_the_host(self):
        instance = self.make_instance("client1")
        self.assertEqual(instance.database_name, "client1.example.com")
        self.assertEqual(instance.host, "client1.example.com")
        self.assertEqual(instance.url, "https://client1.example.com")

    def test_subdomain_routing_names_the_database_after_the_label(self):
        self.env["ir.config_parameter"].set_param("saas.routing_mode", "subdomain")
        instance = self.make_instance("client2")
        self.assertEqual(instance.database_name, "client2")
        self.assertEqual(instance.url, "https://client2.example.com")

    def test_valid_subdomains(self):
        for label in ("a", "0", "acme-42", "x" * 40):
            with self.subTest(label=label):
                self.assertEqual(self.make_instance(label).subdomain, label)

    def test_invalid_subdomains_save_nothing(self):
        before = self.Instance.search_count([])
        for label in ("Acme", "-acme", "acme-", "ac_me", "ac.me", "a b", "x" * 64, "é",
                      "acme;drop database postgres", "'; --"):
            with self.subTest(label=label), self.assertRaisesText(
                    ValidationError, "not a valid subdomain"):
                self.make_instance(label)
        self.assertEqual(self.Instance.search_count([]), before)

    def test_database_name_too_long_for_postgresql(self):
        self.env["ir.config_parameter"].set_param("saas.base_domain", "a-long-base.example.com")
        with self.assertRaisesText(ValidationError, "longer than PostgreSQL"):
            self.make_instance("x" * 50)

    def test_reserved_subdomains(self):
        self.env["ir.config_parameter"].set_param("saas.reserved_subdomains", "status, Shop")
        self.env["ir.config_parameter"].set_param("saas.routing_mode", "subdomain")
        reserved = ["www", "mail", "admin", "api", "postgres", "template0", "template1",
                    "status", "shop"]
        for label in reserved:
            with self.subTest(label=label), self.assertRaisesText(ValidationError, "reserved"):
                self.make_instance(label)

    def test_template_and_manager_databases_are_reserved(self):
        self.env["ir.config_parameter"].set_param("saas.routing_mode", "subdomain")
        self.template.database_name = "blank-master"
        with self.assertRaisesText(ValidationError, "reserved"):
            self.make_instance("blank-master")
        with self.assertRaisesText(ValidationError, "the templates'"):
            self.make_instance("tpl-later")
        self.env["ir.config_parameter"].set_param("saas.routing_mode", "host")
        self.env["ir.config_parameter"].set_param("saas.base_domain", "localhost")
        manager_db = self.env.cr.dbname
        if manager_db.endswith(".localhost"):
            with self.assertRaisesText(ValidationError, "reserved"):
                self.make_instance(manager_db.split(".")[0])
        self.assertIn(manager_db, self.Instance._reserved_names())

    def test_duplicate_subdomain(self):
        self.make_instance("dup")
        with self.assertRaisesText(ValidationError, "already used"):
            self.make_instance("dup")

    def test_terminated_subdomain_stays_taken_until_released(self):
        old = self.make_instance("reuse")
        old.state = "terminated"
        with self.assertRaisesText(ValidationError, "already used"):
            self.make_instance("reuse")
        old.with_user(self.saas_manager).action_release_subdomain()
        self.assertTrue(old.subdomain_released)
        new = self.make_instance("reuse")
        self.assertEqual(new.database_name, old.database_name)

    def test_only_terminated_instances_release(self):
        instance = self.make_instance("keep")
        instance.state = "active"
        with self.assertRaises(UserError):
            instance.action_release_subdomain()

    def test_database_index_guards_against_races(self):
        """Even if the Python check is bypassed, PostgreSQL refuses a second live name,
        and Odoo's RPC layer shows the constraint's message, not PostgreSQL's."""
        self.make_instance("race")
        self.env.flush_all()
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError) as caught, \
                self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO saas_instance (name, partner_id, subdomain, database_name, "
                "template_id, plan_id, company_id, state, subdomain_released, server_id) "
                "SELECT name, partner_id, subdomain, database_name, template_id, plan_id, "
                "company_id, state, subdomain_released, server_id FROM saas_instance "
                "WHERE subdomain = 'race'")
        self.assertRegex(str(_as_validation_error(self.env, caught.exception)),
                         "This (subdomain|database name) is already used by another instance")

    def test_subdomain_is_frozen_once_the_database_exists(self):
        instance = self.make_instance("frozen")
        instance.subdomain = "frozen2"  # still a draft: allowed, names follow
        self.assertEqual(instance.database_name, "frozen2.example.com")
        instance.state = "active"
        with self.assertRaisesText(UserError, "cannot be changed"):
            instance.subdomain = "frozen3"

    def test_base_domain_required(self):
        self.env["ir.config_parameter"].set_param("saas.base_domain", False)
        with self.assertRaisesText(ValidationError, "base domain"):
            self.make_instance("nobase")

    # -- malformed names: one clear ValidationError, before any query ------------------------
    def databases(self):
        self.env.cr.execute("SELECT datname FROM pg_database")
        return {row[0] for row in self.env.cr.fetchall()}

    def test_malformed_subdomains_are_refused_before_any_query(self):
        before, databases = self.Instance.search_count([]), self.databases()
        vals = {"name": "Hostile", "partner_id": self.customer.id,
                "template_id": self.template.id, "plan_id": self.plan.id}
        for label in MALFORMED_SUBDOMAINS:
            with self.subTest(label=label):
                self.assertRefusedWithoutQuery(
                    partial(self.Instance.create, {**vals, "subdomain": label}),
                    "not a valid subdomain")
        for value in NOT_TEXT:
            with self.subTest(value=value):
                self.assertRefusedWithoutQuery(
                    partial(self.Instance.create, {**vals, "subdomain": value}),
                    "subdomain must be text, not %s" % type(value).__name__)
        self.assertEqual(self.Instance.search_count([]), before)
        self.assertEqual(self.databases(), databases, "no database may be created")

    def test_nul_byte_gives_a_clear_message_not_a_psycopg2_error(self):
        """The uniqueness search used to run first: "A string literal cannot contain NUL"."""
        error = self.assertRefusedWithoutQuery(
            partial(self.make_instance, "acme\x00x"), r"'acme\\x00x' is not a valid subdomain: "
            "spaces, line breaks and control characters are not allowed")
        self.assertIsInstance(error, ValidationError)
        instance = self.make_instance("nulwrite")
        self.assertRefusedWithoutQuery(partial(instance.write, {"subdomain": "nul\x00write"}),
                                       "not a valid subdomain")
        self.assertRefusedWithoutQuery(partial(instance.write, {"subdomain": False}),
                                       "subdomain is required")
        self.assertEqual(instance.subdomain, "nulwrite")

    def test_trailing_newline_never_reaches_the_database_name(self):
        for routing in ("host", "subdomain"):
            self.env["ir.config_parameter"].set_param("saas.routing_mode", routing)
            for label in ("acme\n", "postgres\n", "www\n"):
                with self.subTest(routing=routing, label=label), self.assertRaisesText(
                        ValidationError, "line breaks"):
                    self.make_instance(label)

    def test_idna_reserved_labels_are_refused(self):
        for label in ("xn--acme", "xn--mnchen-3ya", "ab--cd", "12--34"):
            with self.subTest(label=label), self.assertRaisesText(ValidationError, "RFC 5891"):
                self.make_instance(label)
        self.assertEqual(self.make_instance("a--b").subdomain, "a--b")  # 2nd and 3rd: fine

    def test_malformed_custom_domains_are_refused_before_any_query(self):
        instance = self.make_instance("owndomain")
        for domain in MALFORMED_DOMAINS:
            with self.subTest(domain=domain):
                self.assertRefusedWithoutQuery(
                    partial(instance.write, {"custom_domain": domain}),
                    "not a valid custom domain")
        for value in NOT_TEXT:
            with self.subTest(value=value):
                self.assertRefusedWithoutQuery(
                    partial(instance.write, {"custom_domain": value}), "must be text")
        self.assertRefusedWithoutQuery(
            partial(self.make_instance, "owndomain2", custom_domain="erp.acme.com\n"),
            "not a valid custom domain")
        instance.custom_domain = "erp.acme.com"
        self.assertEqual(instance.custom_domain, "erp.acme.com")
        instance.custom_domain = False

    def test_ip_address_base_domain_is_refused(self):
        settings = self.env["res.config.settings"]
        for domain in ("127.0.0.1", "10.1.2.3", "0x7f.1", "example.com\n", "xn--bcher-kva.de"):
            with self.subTest(domain=domain), self.assertRaises(ValidationError):
                settings.create({"saas_base_domain": domain})

    # -- the database-level guard ----------------------------------------------------------
    def test_unique_names_are_exclude_constraints_and_the_old_indexes_are_gone(self):
        self.env.cr.execute("""
            SELECT conname FROM pg_constraint
             WHERE conrelid = 'saas_instance'::regclass AND contype = 'x' ORDER BY conname""")
        self.assertEqual([row[0] for row in self.env.cr.fetchall()], [
            "saas_instance_custom_domain_live_excl", "saas_instance_database_name_live_excl",
            "saas_instance_subdomain_live_excl"])
        # An upgraded database still has the old partial unique indexes: init drops them.
        self.env.cr.execute(
            "CREATE UNIQUE INDEX saas_instance_subdomain_live_uniq ON saas_instance (subdomain) "
            "WHERE subdomain_released IS NOT TRUE")
        self.Instance.init()
        self.env.cr.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)",
                            [list(self.Instance._OLD_UNIQUE_INDEXES)])
        self.assertEqual(self.env.cr.fetchone()[0], 0)

    def test_custom_domain_guard_has_a_clear_message(self):
        self.make_instance("dom1", custom_domain="erp.acme.com")
        self.env.flush_all()
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError) as caught, \
                self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO saas_instance (name, partner_id, subdomain, database_name, "
                "template_id, plan_id, company_id, state, custom_domain, server_id) "
                "SELECT name, partner_id, 'dom2', 'dom2.example.com', template_id, plan_id, "
                "company_id, state, custom_domain, server_id FROM saas_instance "
                "WHERE subdomain = 'dom1'")
        error = _as_validation_error(self.env, caught.exception)
        self.assertIn("This custom domain is already used by another instance.", str(error))

    def test_create_race_loser_gets_a_clear_message(self):
        """Two real transactions create the same subdomain; the loser's Python check cannot
        see the winner's row (its snapshot is older), so PostgreSQL decides, and Odoo's RPC
        layer (retrying) turns that into the constraint's message."""
        subdomain = "race%s" % uuid.uuid4().hex[:8]
        params = {"base_domain": "example.com", "routing": "host", "reserved": set()}
        self.patch(type(self.Instance), "_saas_params", lambda self: dict(params))
        vals = {"name": "Race", "subdomain": subdomain, "partner_id": self.env.ref(
                    "base.partner_admin").id,  # committed records only: other transactions
                "template_id": self.template.id, "plan_id": self.plan.id}
        self.addCleanup(self.delete_committed, subdomain)
        with self.registry.cursor() as cr_loser:
            loser = api.Environment(cr_loser, SUPERUSER_ID, {})
            loser["saas.instance"].search_count([])  # the loser's snapshot starts here
            with self.registry.cursor() as cr_winner:  # committed when the block ends
                api.Environment(cr_winner, SUPERUSER_ID, {})["saas.instance"].create(vals)
            with mute_logger("odoo.sql_db"), self.assertRaises(ValidationError) as caught:
                retrying(partial(loser["saas.instance"].create, vals), loser)
        self.assertRegex(str(caught.exception), "The operation cannot be completed: This "
                         "(subdomain|database name) is already used by another instance")
        self.assertIsInstance(caught.exception.__cause__, IntegrityError)

    def delete_committed(self, subdomain):
        with self.registry.cursor() as cr:  # committed when the block ends
            api.Environment(cr, SUPERUSER_ID, {})["saas.instance"].search(
                [("subdomain", "=", subdomain)]).unlink()
