"""The customer's instances and subscriptions in the manager's portal.

Access is Odoo's: every route first loads its record as the portal user
(``_document_check_access``: the portal record rules show a customer their
own commercial partner's records only), and answers a record the customer
may not read exactly as one that does not exist (a redirect to ``/my``), so
ids of other customers' records tell nothing.  Actions are POST (Odoo checks
the CSRF token of every POST form) and run the models' ``_portal_*``
methods, which re-check the record's state on the server.
"""

from urllib.parse import urlencode

from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.exceptions import AccessError, MissingError, UserError
from odoo.http import request, route
from odoo.tools.translate import LazyTranslate

from .backup import download_response

_lt = LazyTranslate(__name__)

#: What an action tells the customer on the page it returns to (``?saas_done=``).
DONE = {
    "backup": _lt("Backup asked for: it appears below within a few minutes."),
    "domain": _lt("Custom domain saved. Create the DNS record below, then check it."),
    "domain_ok": _lt("Your domain points at this instance."),
    "cancel": _lt("Your subscription will end at the end of the paid period."),
    "keep": _lt("Your subscription keeps renewing."),
    "scheduled": _lt("Your new plan starts at the next renewal."),
    "changed": _lt("Your plan has changed."),
    "renewed": _lt("Your subscription is renewed."),
}


class SaasCustomerPortal(CustomerPortal):

    # -- /my ---------------------------------------------------------------------------
    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        for counter, model, domain in (
                ("instance_count", "saas.instance", self._saas_instance_domain()),
                ("subscription_count", "saas.subscription", self._saas_subscription_domain())):
            if counter in counters:
                Model = request.env[model]
                values[counter] = Model.search_count(domain) \
                    if Model.has_access("read") else 0
        return values

    @staticmethod
    def _saas_instance_domain():
        return [("state", "not in", ("draft", "terminated"))]

    @staticmethod
    def _saas_subscription_domain():
        """A draft subscription is the operator's work in progress: not shown."""
        return [("state", "!=", "draft")]

    def _saas_record(self, model, record_id):
        """The record as superuser once the portal user may read it (and it is not a
        draft subscription), else None."""
        try:
            record = self._document_check_access(model, record_id)
        except (AccessError, MissingError):
            return None
        if model == "saas.subscription" and not record.filtered_domain(
                self._saas_subscription_domain()):
            return None
        return record

    def _saas_back(self, record, error=None, done=None):
        """Back to the record's page, saying what happened."""
        query = {"saas_error": error} if error else {"saas_done": done} if done else {}
        return request.redirect("%s%s" % (self._saas_url(record),
                                          "?" + urlencode(query) if query else ""))

    @staticmethod
    def _saas_url(record):
        return "/my/%s/%d" % (
            "instances" if record._name == "saas.instance" else "subscriptions", record.id)

    def _saas_act(self, record, action, done):
        """Run ``action(record)``; a refusal comes back to the page as its message."""
        try:
            self._saas_atomic(record, action)
        except UserError as exc:
            return self._saas_back(record, error=exc.args[0])
        return self._saas_back(record, done=done)

    @staticmethod
    def _saas_atomic(record, action):
        """``action(record)`` in a savepoint: a refusal leaves nothing half written (the
        request's transaction commits, the refusal being answered, not raised)."""
        try:
            with request.env.cr.savepoint():
                result = action(record)
                record.env.flush_all()
        except UserError:
            record.env.invalidate_all()  # the cache may still hold what was undone
            raise
        return result

    def _saas_page(self, template, page_name, **values):
        values = dict(self._prepare_portal_layout_values(), page_name=page_name,
                      saas_error=request.params.get("saas_error"),
                      saas_done=str(DONE.get(request.params.get("saas_done"), "")), **values)
        return request.render(template, values)

    # -- instances ---------------------------------------------------------------------
    @route(["/my/instances"], type="http", auth="user", website=True)
    def portal_my_instances(self, **_kwargs):
        values = self._prepare_portal_layout_values()
        values.update({
            "instances": request.env["saas.instance"].search(self._saas_instance_domain()),
            "page_name": "saas_instances",
        })
        return request.render("saas_manager.portal_my_instances", values)

    @route(["/my/instances/<int:instance_id>"], type="http", auth="user", website=True)
    def portal_my_instance(self, instance_id, **_kwargs):
        instance = self._saas_record("saas.instance", instance_id)
        if not instance:
            return request.redirect("/my")
        return self._saas_page("saas_manager.portal_my_instance", "saas_instance",
                               instance=instance, usage=instance._portal_usage(),
                               backups=instance._portal_backups())

    @route(["/my/instances/<int:instance_id>/open"], type="http", auth="user",
           methods=["POST"], website=True)
    def portal_instance_open(self, instance_id, **_kwargs):
        """Log into the instance as its administrator (the customer's own)."""
        instance = self._saas_record("saas.instance", instance_id)
        if not instance:
            return request.redirect("/my")
        try:
            url = instance._saas_login_url()
        except UserError as exc:
            return self._saas_back(instance, error=exc.args[0])
        return request.redirect(url, local=False)

    @route(["/my/instances/<int:instance_id>/backup"], type="http", auth="user",
           methods=["POST"], website=True)
    def portal_instance_backup(self, instance_id, **_kwargs):
        instance = self._saas_record("saas.instance", instance_id)
        if not instance:
            return request.redirect("/my")
        return self._saas_act(instance, lambda i: i._portal_backup_now(), "backup")

    @route(["/my/instances/<int:instance_id>/backups/<int:backup_id>/download"], type="http",
           auth="user", methods=["GET"], website=True)
    def portal_instance_backup_download(self, instance_id, backup_id, **_kwargs):
        """The backup as Odoo's own zip, restorable by any Odoo 18 database manager."""
        instance = self._saas_record("saas.instance", instance_id)
        backup = instance and instance._portal_backups().filtered(lambda b: b.id == backup_id)
        if not backup:
            raise request.not_found()
        return download_response(backup, "odoo")

    @route(["/my/instances/<int:instance_id>/domain"], type="http", auth="user",
           methods=["POST"], website=True)
    def portal_instance_domain(self, instance_id, domain="", **_kwargs):
        instance = self._saas_record("saas.instance", instance_id)
        if not instance:
            return request.redirect("/my")
        return self._saas_act(instance, lambda i: i._portal_set_domain(domain), "domain")

    @route(["/my/instances/<int:instance_id>/domain/check"], type="http", auth="user",
           methods=["POST"], website=True)
    def portal_instance_domain_check(self, instance_id, **_kwargs):
        instance = self._saas_record("saas.instance", instance_id)
        if not instance:
            return request.redirect("/my")
        try:
            ok, detail = instance._portal_check_domain()
        except UserError as exc:
            return self._saas_back(instance, error=exc.args[0])
        return self._saas_back(instance, done="domain_ok") if ok else self._saas_back(
            instance, error=request.env._("Not yet: %(detail)s.", detail=detail))

    # -- subscriptions -----------------------------------------------------------------
    @route(["/my/subscriptions"], type="http", auth="user", website=True)
    def portal_my_subscriptions(self, **_kwargs):
        values = self._prepare_portal_layout_values()
        values.update({
            "subscriptions": request.env["saas.subscription"].search(
                self._saas_subscription_domain()),
            "page_name": "saas_subscriptions",
        })
        return request.render("saas_manager.portal_my_subscriptions", values)

    @route(["/my/subscriptions/<int:subscription_id>"], type="http", auth="user",
           website=True)
    def portal_my_subscription(self, subscription_id, **_kwargs):
        sub = self._saas_record("saas.subscription", subscription_id)
        if not sub:
            return request.redirect("/my")
        return self._saas_page("saas_manager.portal_my_subscription", "saas_subscription",
                               subscription=sub, plans=sub._portal_plans())

    @route(["/my/subscriptions/<int:subscription_id>/change"], type="http", auth="user",
           methods=["GET", "POST"], website=True)
    def portal_subscription_change(self, subscription_id, plan_id=None, period=None,
                                   amount=None, **_kwargs):
        """GET: what the change would do; POST: do it (the amount shown must still hold)."""
        sub = self._saas_record("saas.subscription", subscription_id)
        if not sub:
            return request.redirect("/my")
        plan = request.env["saas.plan"].sudo().browse(_to_int(plan_id))
        if period not in ("monthly", "yearly"):
            period = sub.period
        try:
            if request.httprequest.method != "POST":
                return self._saas_page(
                    "saas_manager.portal_subscription_change", "saas_subscription",
                    subscription=sub, change=sub._portal_change_preview(plan, period))
            invoice = self._saas_atomic(
                sub, lambda s: s._portal_change(plan, period, _to_float(amount)))
        except UserError as exc:
            return self._saas_back(sub, error=exc.args[0])
        if invoice and invoice.state == "posted" and invoice.amount_residual:
            return request.redirect(_pay_url(invoice))
        return self._saas_back(sub, done="changed" if invoice or sub.plan_id == plan
                               else "scheduled")

    @route(["/my/subscriptions/<int:subscription_id>/<any(cancel, keep, renew):action>"],
           type="http", auth="user", methods=["POST"], website=True)
    def portal_subscription_action(self, subscription_id, action, **_kwargs):
        sub = self._saas_record("saas.subscription", subscription_id)
        if not sub:
            return request.redirect("/my")
        if action != "renew":
            method = "action_cancel_at_period_end" if action == "cancel" else "action_undo_cancel"
            return self._saas_act(sub, lambda s: getattr(s, method)(), action)
        try:
            self._saas_atomic(sub, lambda s: s.action_renew())
        except UserError as exc:
            return self._saas_back(sub, error=exc.args[0])
        invoice = sub.last_invoice_id
        if invoice.state == "posted" and invoice.amount_residual:
            return request.redirect(_pay_url(invoice))
        return self._saas_back(sub, done="renewed")


def _pay_url(invoice):
    """The invoice's portal page with Odoo's payment dialog open."""
    return invoice.get_portal_url(query_string="&payment=True", anchor="portal_pay")


def _to_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return -1.0

