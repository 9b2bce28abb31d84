from odoo import models

#: The records whose customer mails are watched: a failed one opens an incident on them.
WATCHED_MODELS = ("saas.instance", "saas.subscription")


class MailMail(models.Model):
    _inherit = "mail.mail"

    def _postprocess_sent_message(self, success_pids, failure_reason=False, failure_type=None):
        """A customer mail about an instance or a subscription that could not be sent
        opens a "Mail Failed" incident on it (the operator is told; the chatter's
        envelope turns red as for any Odoo message); the next one sent closes it."""
        for mail in self.filtered(lambda m: m.model in WATCHED_MODELS and m.res_id):
            target = self.env[mail.model].sudo().browse(mail.res_id).exists()
            if target:
                target._saas_mail_outcome(failure_type and (failure_reason or failure_type))
        return super()._postprocess_sent_message(
            success_pids, failure_reason=failure_reason, failure_type=failure_type)
