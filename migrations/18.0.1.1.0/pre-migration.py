"""18.0.1.1.0, before the data files load: refresh what the new code no longer matches.

The "instance ready" mail template (noupdate) of earlier versions printed a
password field that no longer exists: it is reloaded from the module's data.
"""


def migrate(cr, version):
    if not version:
        return
    cr.execute("UPDATE ir_model_data SET noupdate = false "
               "WHERE module = 'saas_manager' AND name = 'mail_template_instance_ready'")
