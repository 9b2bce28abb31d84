"""Incidents: one record per problem, from the moment it is seen to its recovery.

Every alert of saas_manager goes through :meth:`SaasIncident._saas_open`: an
instance down after N failed checks, over its plan's limits, a failed backup,
restore drill, provisioning or any other operation (template builds
included), a server's disk above its threshold, a customer mail that could
not be sent.  Seeing the same problem
again while its incident is open does nothing more than count it, so the
responsible user and the SaaS managers get **one** activity and **one**
e-mail per incident, and one recovery notice when :meth:`_saas_resolve` is
called because the problem went away (the instance answers again, the next
operation of that kind succeeded...).
"""

from odoo import api, fields, models

INCIDENT_KINDS = [
    ("down", "Instance Down"),
    ("limits", "Limits Exceeded"),
    ("operation", "Operation Failed"),
    ("drill", "Restore Drill Failed"),
    ("disk", "Disk Almost Full"),
    ("mail", "Mail Failed"),
]
#: Where the operator looks at what the incident is about.
TARGET_MODELS = [("saas.instance", "Instance"), ("saas.subscription", "Subscription"),
                 ("saas.template", "Template"), ("saas.server", "Server")]


class SaasIncident(models.Model):
    _name = "saas.incident"
    _description = "SaaS Incident"
    _inherit = ["mail.thread"]
    _order = "state desc, opened_at desc, id desc"

    name = fields.Char(string="Summary", required=True, readonly=True)
    kind = fields.Selection(INCIDENT_KINDS, required=True, readonly=True, index=True)
    key = fields.Char(
        readonly=True, required=True, index=True,
        help="What makes two alerts the same incident: the kind's own detail (the "
             "operation kind, the limit) on one target.")
    res_model = fields.Selection(TARGET_MODELS, string="Target Model", required=True,
                                 readonly=True)
    res_id = fields.Many2oneReference(string="Target", model_field="res_model", required=True,
                                      readonly=True)
    target_name = fields.Char(string="About", readonly=True)
    instance_id = fields.Many2one("saas.instance", readonly=True, index="btree_not_null",
                                  ondelete="cascade")
    user_id = fields.Many2one("res.users", string="Responsible", readonly=True)
    state = fields.Selection([("open", "Open"), ("resolved", "Resolved")], default="open",
                             required=True, readonly=True, index=True)
    opened_at = fields.Datetime(readonly=True, required=True, default=fields.Datetime.now)
    last_seen_at = fields.Datetime(readonly=True)
    resolved_at = fields.Datetime(readonly=True)
    occurrences = fields.Integer(readonly=True, default=1,
                                 help="Times the problem was seen while the incident was open.")
    details = fields.Text(readonly=True)
    activity_id = fields.Many2one(
        "mail.activity", readonly=True, ondelete="set null",
        help="The to-do given to the responsible on the target, marked done at recovery.")
    duration_hours = fields.Float(string="Duration (h)", digits=(16, 2),
                                  compute="_compute_duration_hours")

    def init(self):
        """At most one open incident per problem, even when two crons see it at once."""
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS saas_incident_open_uniq "
            "ON saas_incident (key) WHERE state = 'open'")

    @api.depends("opened_at", "resolved_at")
    def _compute_duration_hours(self):
        now = fields.Datetime.now()
        for incident in self:
            end = incident.resolved_at or now
            incident.duration_hours = incident.opened_at and (
                (end - incident.opened_at).total_seconds() / 3600)

    # -- the API every alert uses ----------------------------------------------------
    @api.model
    def _saas_key(self, kind, target, detail=""):
        return "%s:%s:%s:%s" % (kind, target._name, target.id, detail)

    @api.model
    def _saas_open(self, kind, target, summary, details="", detail=""):
        """Open the incident ``kind`` (+ ``detail``) on ``target``, or count one more
        sighting of the open one.  Returns the incident."""
        key = self._saas_key(kind, target, detail)
        incident = self.sudo().search([("key", "=", key), ("state", "=", "open")], limit=1)
        if incident:
            incident.write({"occurrences": incident.occurrences + 1,
                            "last_seen_at": fields.Datetime.now(),
                            "details": details or incident.details})
            return incident
        # The target's responsible, else whoever made it (crons run as OdooBot).
        user = ("user_id" in target._fields and target.user_id) or target.create_uid
        incident = self.sudo().create({
            "name": summary, "kind": kind, "key": key, "res_model": target._name,
            "res_id": target.id, "target_name": target.display_name,
            "instance_id": target.id if target._name == "saas.instance" else (
                "instance_id" in target._fields and target.instance_id.id),
            "user_id": user.id, "details": details,
            "last_seen_at": fields.Datetime.now()})
        incident._saas_announce()
        return incident

    @api.model
    def _saas_resolve(self, kind, target, note="", detail=""):
        """Close the open incident ``kind`` (+ ``detail``) on ``target``, if any, and
        tell whoever was told it opened."""
        incident = self.sudo().search(
            [("key", "=", self._saas_key(kind, target, detail)), ("state", "=", "open")],
            limit=1)
        if incident:
            incident._saas_close(note)
        return incident

    # -- notifications ---------------------------------------------------------------
    def _saas_recipients(self):
        """The responsible user and every SaaS manager (active internal users)."""
        managers = self.env.ref("saas_manager.group_saas_manager").sudo().users
        return (self.user_id | managers).filtered(lambda u: u.active and not u.share).partner_id

    def _saas_post(self, subject, body):
        """A message on the incident, mailed to the recipients (named, not followers:
        they are told twice, at the opening and at the recovery, and of nothing else)."""
        self.message_post(body=body, subject=subject, partner_ids=self._saas_recipients().ids,
                          subtype_xmlid="mail.mt_note", message_type="notification")

    def _saas_announce(self):
        """One e-mail to the recipients, posted on the incident (its chatter is the
        incident's story), and one activity for the responsible on the target."""
        self.ensure_one()
        self._saas_post(self.env._("[SaaS incident] %(summary)s", summary=self.name),
                        self.details or self.name)
        target = self.env[self.res_model].browse(self.res_id)
        if "activity_ids" in target and self.user_id:
            self.sudo().activity_id = target.sudo().activity_schedule(
                "mail.mail_activity_data_todo", user_id=self.user_id.id,
                summary=self.name[:200], note=self.details or "")

    def _saas_close(self, note):
        self.ensure_one()
        now = fields.Datetime.now()
        self.write({"state": "resolved", "resolved_at": now})
        self._saas_post(self.env._("[SaaS recovered] %(summary)s", summary=self.name),
                        self.env._("Recovered after %(hours).1f h. %(note)s",
                                   hours=self.duration_hours, note=note))
        # Not done yet (a to-do type that keeps done activities archives them).
        activity = self.activity_id.sudo().exists().filtered("active")
        if activity:
            activity.action_feedback(feedback=self.env._("Recovered."))
