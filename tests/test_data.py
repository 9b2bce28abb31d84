import importlib.util
import os
import shutil
import tarfile
import tempfile

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from .common import SaasCase


@tagged("post_install", "-at_install")
class TestSeedData(TransactionCase):
    """The shipped plans and templates are exactly the spec's."""

    def test_plans(self):
        eur = self.env.ref("base.EUR")
        expected = {
            "starter": ("Starter", 5, 10, 29.0, False),
            "professional": ("Professional", 15, 50, 79.0, True),
            "enterprise": ("Enterprise", 50, 200, 199.0, False),
        }
        plans = self.env["saas.plan"].search([("code", "in", list(expected))])
        self.assertEqual(len(plans), 3)
        for plan in plans:
            self.assertEqual(
                (plan.name, plan.max_users, plan.storage_gb, plan.price_monthly, plan.popular),
                expected[plan.code], plan.code)
            self.assertEqual(plan.currency_id, eur)
            self.assertEqual(plan.price_yearly, plan.price_monthly * 10, "two months free")
            self.assertEqual(plan.product_id.type, "service")
        self.assertTrue(eur.active, "invoices in EUR need the currency active")

    def test_templates(self):
        expected = {
            "blank": {"base", "mail"},
            "restaurant": {"point_of_sale", "pos_restaurant", "stock", "purchase", "account"},
            "ecommerce": {"website", "website_sale", "sale_management", "stock"},
            "services": {"project", "hr_timesheet", "sale_management", "sale_timesheet",
                         "account"},
        }
        templates = self.env["saas.template"].search([])
        self.assertEqual(set(templates.mapped("code")), set(expected))
        for template in templates:
            self.assertEqual(set(template.module_list()), expected[template.code])
            self.assertEqual(template.state, "draft")
            self.assertFalse(template.database_name, "installed before any base domain")

    def test_every_listed_module_exists_on_this_server(self):
        """A template module missing from the addons path would only fail at build time."""
        names = set()
        for template in self.env["saas.template"].search([]):
            names.update(template.module_list())
        known = set(self.env["ir.module.module"].search([("name", "in", list(names))])
                    .mapped("name"))
        self.assertEqual(names - known, set())

    def test_menus(self):
        root = self.env.ref("saas_manager.menu_saas_root")
        self.assertEqual(root.name, "SaaS Manager")
        children = {menu.name: menu.child_id.mapped("name") for menu in root.child_id}
        self.assertEqual(children, {
            "Dashboard": [],
            "Customers": ["Customers", "Instances", "Subscriptions", "Health Checks",
                          "Sign-ups"],
            "Operations": [],
            "Incidents": [],
            "Update Campaigns": [],
            "Backups": ["Backups", "Import an Odoo Backup"],
            "Reporting": ["Monthly Figures", "MRR", "MRR Movements",
                          "Subscriptions over Time"],
            "Configuration": ["Templates", "Plans", "Servers", "Settings"],
        })
        self.assertEqual(root.action, self.env.ref("saas_manager.action_saas_dashboard"),
                         "the app opens on its dashboard")


@tagged("post_install", "-at_install")
class TestTemplateNames(SaasCase):

    def test_template_databases_are_named_like_hosts(self):
        """Open Template needs a host that reaches the database: the derived names are
        hosts of the base domain, given at creation or, without a base domain, at build."""
        Template = self.env["saas.template"]
        self.assertEqual(Template.create({"name": "Clinic", "code": "my_clinic"}).database_name,
                         "tpl-my-clinic.example.com")
        twin = Template.create({"name": "Clinic 2", "code": "my-clinic"})
        self.assertFalse(twin.database_name, "the same name: left to the operator")
        with self.assertRaisesText(UserError, "already the database of Clinic"):
            twin.action_build()
        set_param = self.env["ir.config_parameter"].set_param
        set_param("saas.base_domain", "")
        later = Template.create({"name": "Later", "code": "later"})
        self.assertFalse(later.database_name, "no base domain yet")
        with self.assertRaisesText(UserError, "base domain"):
            later.action_build()
        self.assertEqual((later.state, later.database_name), ("draft", False))
        set_param("saas.base_domain", "example.com")
        set_param("saas.routing_mode", "subdomain")
        later._saas_name_database()
        self.assertEqual(later.database_name, "tpl-later")
        self.assertEqual(later._access_url(), "https://tpl-later.example.com")


@tagged("post_install", "-at_install")
class TestMigration(SaasCase):
    """18.0.1.1.0: work left by the old crons becomes operations; old columns go.
    18.0.1.2.0: plans get their backup frequency, backups their server."""

    @staticmethod
    def load(name, version="18.0.1.1.0"):
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                            "migrations", version, "%s.py" % name)
        spec = importlib.util.spec_from_file_location("saas_manager_migration_%s" % name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def test_post_migration(self):
        instance = self.make_instance("migrated")
        self.env.cr.execute("UPDATE saas_instance SET state = 'provisioning' WHERE id = %s",
                            [instance.id])
        self.env.cr.execute("ALTER TABLE saas_instance ADD COLUMN admin_password_encrypted "
                            "varchar, ADD COLUMN provision_timings text")
        self.load("post-migration").migrate(self.env.cr, "18.0.1.0.0")
        self.env.invalidate_all()
        self.assertEqual(self.last_operation(instance).mapped("state"), ["queued"])
        self.env.cr.execute("SELECT column_name FROM information_schema.columns WHERE "
                            "table_name = 'saas_instance' AND column_name IN "
                            "('admin_password_encrypted', 'provision_timings')")
        self.assertEqual(self.env.cr.fetchall(), [])
        self.load("post-migration").migrate(self.env.cr, None)  # a new install: nothing

    def test_backup_migration(self):
        pro, starter = (self.env.ref("saas_manager.plan_%s" % c)
                        for c in ("professional", "starter"))
        self.env.cr.execute("UPDATE saas_plan SET backup_interval_hours = 24")
        self.env["ir.config_parameter"].set_param("saas.backup_scheduled_retention_days", "14")
        self.load("post-migration", "18.0.1.2.0").migrate(self.env.cr, "18.0.1.1.0")
        self.env.invalidate_all()
        self.assertEqual((pro.backup_interval_hours, starter.backup_interval_hours), (12, 24))
        self.assertFalse(self.env["ir.config_parameter"].get_param(
            "saas.backup_scheduled_retention_days"))

    def test_url_column_dropped_and_mrr_log_backfilled(self):
        sub = self.env["saas.subscription"].create(
            {"instance_id": self.make_instance("backfilled").id, "skip_trial": True,
             "date_start": "2026-01-10"})
        sub.action_activate()
        sub.log_ids.unlink()  # as before 18.0.1.5.0
        self.env.cr.execute("ALTER TABLE saas_instance ADD COLUMN url varchar")
        self.load("post-migration", "18.0.1.5.0").migrate(self.env.cr, "18.0.1.4.0")
        self.env.invalidate_all()
        self.env.cr.execute("SELECT 1 FROM information_schema.columns WHERE "
                            "table_name = 'saas_instance' AND column_name = 'url'")
        self.assertFalse(self.env.cr.fetchall(), "the stored URL column is gone")
        self.assertEqual(
            [(row.date, row.state_from, row.state_to, row.mrr_after) for row in sub.log_ids],
            [(sub.billing_anchor, "draft", "active", sub.price)])

    def test_template_databases_renamed_until_built(self):
        draft = self.env.ref("saas_manager.template_restaurant")
        built = self.env.ref("saas_manager.template_blank")
        self.env.cr.execute("UPDATE saas_template SET database_name = 'saas_tpl_' || code")
        self.env.cr.execute("UPDATE saas_template SET database_owned = true, "
                            "state = 'configuring' WHERE id = %s", [built.id])
        self.load("post-migration", "18.0.1.6.0").migrate(self.env.cr, "18.0.1.5.0")
        self.env.invalidate_all()
        self.assertEqual(draft.database_name, "tpl-restaurant.example.com")
        self.assertEqual(built.database_name, "saas_tpl_blank", "a built one keeps its own")

    def test_open_incidents_find_their_todo(self):
        instance = self.make_instance("oldincident", user_id=self.saas_user.id)
        incident = self.env["saas.incident"]._saas_open("down", instance, "Old is down")
        todo = incident.activity_id
        incident.activity_id = False  # opened before 18.0.1.6.0
        self.load("post-migration", "18.0.1.6.0").migrate(self.env.cr, "18.0.1.5.0")
        self.assertEqual((len(todo), incident.activity_id), (1, todo))

    def test_old_final_backup_paths_become_records(self):
        instance = self.make_instance("oldbackup")
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        dump = os.path.join(folder, "%s-20260215T020000Z.dump" % instance.database_name)
        with open(dump, "wb") as handle:
            handle.write(b"dump bytes")
        archive = os.path.join(folder, "files.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(dump, arcname="a-file")
        self.env.cr.execute("ALTER TABLE saas_instance ADD COLUMN backup_dump_path varchar, "
                            "ADD COLUMN backup_filestore_path varchar")
        self.env.cr.execute("UPDATE saas_instance SET state = 'terminated', backup_dump_path = %s, "
                            "backup_filestore_path = %s WHERE id = %s",
                            [dump, archive, instance.id])
        self.load("post-migration").migrate(self.env.cr, "18.0.1.0.0")
        self.env.invalidate_all()
        made = self.env["saas.backup"].search([("instance_id", "=", instance.id)])
        self.assertEqual((made.kind, made.dump_path, made.filestore_path, made.file_count),
                         ("final", dump, archive, 1))
        self.assertEqual((made.dump_size, made.stamp.isoformat()),
                         (10, "2026-02-15T02:00:00"))
        made._saas_verify()  # sizes and checksums as the files are now
