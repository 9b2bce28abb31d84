from . import saas_secret_mixin
from . import saas_server_mixin
from . import saas_template
from . import saas_plan
from . import saas_subscription
from . import saas_instance
from . import res_partner
from . import res_config_settings
