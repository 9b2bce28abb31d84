from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from .common import SaasCase

OTHER_PASSWORD = "Eu2-secret-pw"
EU2 = {"db_host": "db.eu2.internal", "db_port": "6432", "db_user": "odoo_eu2",
       "db_password": OTHER_PASSWORD, "db_sslmode": "require", "data_dir": "/srv/eu2",
       "saas_odoo_url": "http://10.0.2.1:8069",
       "saas_public_scheme": "http", "saas_public_port": "8080"}


@tagged("post_install", "-at_install")
class TestServers(SaasCase):
    """saas.server: the local record, odoo.conf sections, rights, capacity, deployments."""

    def setUp(self):
        super().setUp()
        self.local = self.env.ref("saas_manager.server_local")
        self.patch(config, "misc", {**config.misc, "saas_server_eu2": dict(EU2)})

    def new_server(self, **values):
        return self.env["saas.server"].create({
            "name": "Europe 2", "code": "eu2", "config_section": "saas_server_eu2", **values})

    def test_local_server_stands_for_options(self):
        self.assertFalse(self.local.config_section)
        self.assertTrue(self.local.is_local)
        value = self.local._server()
        self.assertEqual(value.pg_params(), self.Instance._saas_pg_params())
        self.assertEqual(value.data_dir, config["data_dir"])
        self.assertEqual(value.db_owner, config.get("db_user") or None)
        self.assertEqual(value.filestore("x.example.com"), config.filestore("x.example.com"))
        self.assertEqual(self.local.data_dir, config["data_dir"])
        self.assertEqual(self.local.odoo_url, config.get("saas_odoo_url")
                         or "http://127.0.0.1:%s" % config["http_port"])
        self.assertFalse(self.local.config_error)

    def test_instances_and_templates_default_to_the_local_server(self):
        instance = self.make_instance("placed")
        self.assertEqual(instance.server_id, self.local)
        self.assertEqual(self.template.server_id, self.local)
        self.assertEqual(instance._saas_server(), self.local._server())

    def test_a_section_is_read_on_its_own_and_no_password_is_shown(self):
        self.patch(config, "options", {**config.options, "db_password": "Local-secret-pw",
                                       "db_user": "odoo_local"})
        server = self.new_server()
        value = server._server()
        self.assertEqual(value.pg_params(), {
            "host": "db.eu2.internal", "port": "6432", "user": "odoo_eu2",
            "password": OTHER_PASSWORD, "sslmode": "require"})
        self.assertEqual((value.data_dir, value.odoo_url), ("/srv/eu2", "http://10.0.2.1:8069"))
        self.assertEqual(value.public_url("a.example.com"), "http://a.example.com:8080")
        self.assertIsNone(value.proxy)
        self.assertIsNone(value.child_rcfile, "the child must not read [options]")
        self.assertEqual(server.pg_address, "db.eu2.internal:6432")
        self.assertEqual(server.backup_dir, "/srv/eu2/saas_backups")
        shown = server.with_user(self.saas_admin).read()[0]
        for password in (OTHER_PASSWORD, "Local-secret-pw"):
            self.assertNotIn(password, repr(shown))
            self.assertNotIn(password, repr(value))
        # a key the section lacks is not taken from [options]
        del config.misc["saas_server_eu2"]["db_password"]
        self.assertNotIn("password", server._server().pg)

    def test_section_must_exist_spelled_exactly(self):
        for section in ("saas_server_eu", "saas_server_eu2 ", " saas_server_eu2",
                        "SAAS_SERVER_EU2", "saas_server_eu2\n", "options"):
            with self.subTest(section=section), self.assertRaises(ValidationError):
                self.new_server(config_section=section)
        with self.assertRaisesText(ValidationError, "already is a local server"):
            self.env["saas.server"].create({"name": "Second local", "code": "local2"})
        self.assertTrue(self.new_server())

    def test_a_section_without_its_locations_is_reported(self):
        del config.misc["saas_server_eu2"]["data_dir"]
        server = self.new_server()
        self.assertIn("data_dir", server.config_error)
        self.assertFalse(server.pg_address)
        with self.assertRaisesText(UserError, "data_dir"):
            server._server()

    def test_only_administrators_create_or_change_servers(self):
        for user in (self.saas_user, self.saas_manager):
            with self.subTest(user=user.login):
                self.local.with_user(user).read(["name", "pg_address"])
                with self.assertRaises(AccessError):
                    self.local.with_user(user).write({"max_instances": 3})
                with self.assertRaises(AccessError):
                    self.env["saas.server"].with_user(user).create(
                        {"name": "Mine", "code": "mine", "config_section": "saas_server_eu2"})
        self.local.with_user(self.saas_admin).write({"max_instances": 3})
        self.assertTrue(self.new_server().with_user(self.saas_admin).write({"name": "EU 2"}))

    def test_local_server_stays(self):
        with self.assertRaises(UserError):
            self.local.active = False
        with self.assertRaises(UserError):
            self.local.unlink()

    def test_instance_server_is_managed_and_fixed_once_provisioned(self):
        other = self.new_server()
        instance = self.make_instance("fixed")
        with self.assertRaises(AccessError):
            instance.with_user(self.saas_manager).write({"server_id": other.id})
        instance.sudo().server_id = other  # before provisioning: SaaS Manager may
        self.assertEqual(instance.url, "http://fixed.example.com:8080", "the server's scheme")
        instance.sudo().write({"state": "active", "owned_database": instance.database_name})
        with self.assertRaisesText(UserError, "cannot be changed"):
            instance.sudo().server_id = self.local
        with self.assertRaisesText(UserError, "keeps its odoo.conf section"):
            other.config_section = False

    def test_capacity_counts_instances_holding_a_database(self):
        self.local.max_instances = 2
        first, second, third = (self.make_instance(name) for name in ("one", "two", "three"))
        self.make_instance("draft")
        self.make_instance("gone").sudo().state = "terminated"
        first.sudo().write({"state": "active", "owned_database": first.database_name})
        second.sudo().write({"state": "provisioning", "owned_database": second.database_name})
        self.assertEqual(self.local.instance_count, 2)
        self.local._check_capacity(first)  # itself does not count
        with self.assertRaisesText(UserError, "is full: 2 of 2"):
            self.local._check_capacity(third)
        self.local.max_instances = 0
        self.local._check_capacity(third)  # unlimited

    def test_home_deployment_follows_the_template(self):
        template = self.template
        self.assertFalse(template.deployment_ids)
        with self.assertRaisesText(UserError, "no ready deployment"):
            template._saas_clone_source(self.local)
        template._saas_name_database()  # as its build does
        template.sudo().write({"state": "ready", "revision": 4})
        deployment = template._saas_clone_source(self.local)
        self.assertEqual((deployment.database_name, deployment.revision, deployment.state),
                         (template.database_name, 4, "ready"))
        template.sudo().state = "configuring"
        self.assertEqual(deployment.state, "outdated")
        with mute_logger("odoo.sql_db"):
            template._drop_database()  # no database by that name: nothing to drop
        self.assertEqual(deployment.state, "missing")
        with self.assertRaises(AccessError):
            deployment.with_user(self.saas_admin).state = "ready"
        with self.assertRaisesText(UserError, "home server of a built template"):
            template.sudo().write({"state": "ready", "server_id": self.new_server().id})
