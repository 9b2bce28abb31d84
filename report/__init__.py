from . import saas_mrr_report
from . import saas_subscription_state_report
from . import saas_kpi_report
