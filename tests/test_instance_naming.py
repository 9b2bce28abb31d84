from psycopg2 import IntegrityError

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import SaasCase


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
        self.template.database_name = "tpl-blank"
        with self.assertRaisesText(ValidationError, "reserved"):
            self.make_instance("tpl-blank")
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
        """Even if the Python check is bypassed, PostgreSQL refuses a second live name."""
        self.make_instance("race")
        self.env.flush_all()
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), \
                self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO saas_instance (name, partner_id, subdomain, database_name, "
                "template_id, plan_id, company_id, state, subdomain_released) "
                "SELECT name, partner_id, subdomain, database_name, template_id, plan_id, "
                "company_id, state, subdomain_released FROM saas_instance WHERE subdomain = 'race'")

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
