from . import saas_template_delete
