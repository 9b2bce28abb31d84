# Run by `odoo shell` in the manager database (``env`` is given) from ./dev run:
# locks the Blank template, then provisions the "demo" instance through the
# running server's operation runner and prints one JSON line with the outcome.
import json
import time

from odoo.tools import config

set_param = env["ir.config_parameter"].set_param  # noqa: F821
set_param("saas.base_domain", "localhost")
set_param("saas.routing_mode", "subdomain" if config["dbfilter"] == "^%d$" else "host")
template = env.ref("saas_manager.template_blank")  # noqa: F821
if template.state != "ready":
    # The database ./dev built: named tpl-blank as the product derives it.
    template._saas_name_database()
    template.write({"admin_login": "admin", "admin_password": "admin", "state": "configuring"})
    template.action_lock()
# Two standby databases: a sign-up gets its Odoo by a rename (the runner fills them).
DEV_POOL_SIZE = 2
if template.pool_size != DEV_POOL_SIZE:
    template.pool_size = DEV_POOL_SIZE
# The manager's own address (links in mails point there); Odoo sets it at the admin's login.
set_param(
    "web.base.url", "http://%s:%s" % (env.cr.dbname, config["http_port"]))  # noqa: F821
Partner = env["res.partner"]  # noqa: F821
partner = Partner.search([("email", "=", "demo@example.com")], limit=1) or Partner.create(
    {"name": "Demo Customer", "email": "demo@example.com", "is_company": True})
Instance = env["saas.instance"]  # noqa: F821
instance = Instance.search([("subdomain", "=", "demo")], limit=1) or Instance.create({
    "name": "Demo", "subdomain": "demo", "partner_id": partner.id, "template_id": template.id,
    "plan_id": env.ref("saas_manager.plan_starter").id})  # noqa: F821
if instance.state in ("draft", "failed"):
    instance.action_provision()
env.cr.commit()  # noqa: F821
deadline = time.time() + 300
while instance.state == "provisioning" and time.time() < deadline:
    time.sleep(0.5)
    env.cr.rollback()  # noqa: F821
    env.invalidate_all()  # noqa: F821  (the operation too: its time is printed)
welcome_url = None
if instance.state == "active":
    # No mail server in development: hand the developer a fresh welcome link instead.
    token = env["saas.access.link"]._issue(instance, "welcome", instance.admin_login)  # noqa: F821
    env.cr.commit()  # noqa: F821
    welcome_url = "%s/saas/welcome#%s" % (instance.get_base_url(), token)
operation = env["saas.operation"].search(  # noqa: F821
    [("instance_id", "=", instance.id), ("kind", "=", "provision")], limit=1)
print("SAAS_DEMO " + json.dumps({"welcome_url": welcome_url,
    "state": instance.state, "url": instance.url, "login": instance.admin_login,
    "error": operation.error or False, "pool_size": template.pool_size,
    "seconds": operation.seconds}))
