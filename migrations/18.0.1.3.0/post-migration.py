"""18.0.1.3.0: the seed templates keep one standby database each (new installs get it from
their data file, which is not reloaded on update: ``noupdate``)."""

from odoo import SUPERUSER_ID, api

SEED_TEMPLATES = ("template_blank", "template_restaurant", "template_ecommerce",
                  "template_services")


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    for name in SEED_TEMPLATES:
        template = env.ref("saas_manager.%s" % name, raise_if_not_found=False)
        if template and not template.pool_size:
            template.pool_size = 1
