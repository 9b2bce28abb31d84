import logging
import threading

from odoo import api, models
from odoo.exceptions import UserError
from odoo.tools import split_every

_logger = logging.getLogger(__name__)


class SaasLifecycleMixin(models.AbstractModel):
    """Batches, commits, progress and customer notifications of the lifecycle crons.

    A cron walks every due record in batches: each record runs inside a
    savepoint, so one failing record is rolled back, logged and reported in
    its chatter while the others go on; each batch is committed (outside
    tests) and reported with ``ir.cron._notify_progress``, so a crash or a
    timeout keeps what was done and the next run resumes where it stopped
    (every cron selects what is *due*, so running twice does a thing once).
    """

    _name = "saas.lifecycle.mixin"
    _description = "SaaS Lifecycle Helpers"

    @api.model
    def _saas_cron_batches(self, records, handler, batch_size):
        """Run ``handler(record)`` on each record; return ``{"done", "failed"}`` counts."""
        done = failed = 0
        total = len(records)
        for ids in split_every(batch_size, records.ids):
            for record in records.browse(ids):
                try:
                    with self.env.cr.savepoint():
                        handler(record)
                except Exception as exc:  # one bad record must not stop the others
                    failed += 1
                    _logger.exception("%s %s: cron step failed", record._name, record.id)
                    record.message_post(body=self.env._("Automatic processing failed: %(error)s",
                                                        error=str(exc)))
            done += len(ids)
            self.env["ir.cron"]._notify_progress(done=done, remaining=total - done)
            self._commit()
        return {"done": done, "failed": failed}

    def _check_states(self, states, message):
        """What a lifecycle button checks first: write access, and the states it accepts."""
        self.check_access("write")
        if self.filtered(lambda record: record.state not in states):
            raise UserError(message)

    def _commit(self):
        """Commit outside tests (a test's transaction is rolled back at its end)."""
        if not self._testing():
            # Crons that change other databases commit per step or batch: what
            # was done there must be recorded here before the next one starts.
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _refresh_snapshot(self):
        """Start a new transaction (outside tests) and forget the cache.

        Odoo's cursors are REPEATABLE READ: a lock taken after the
        transaction's first query does not make its reads fresh, so a runner
        that waited for another would act on what it read before, and could
        drop a database the other one just finished.
        """
        self._commit()
        self.env.invalidate_all()

    @staticmethod
    def _testing():
        return getattr(threading.current_thread(), "testing", False)

    def _saas_portal_url(self):
        """The customer's page of this record in the manager's portal (mails link to it)."""
        self.ensure_one()
        path = {"saas.instance": "instances", "saas.subscription": "subscriptions"}[self._name]
        return "%s/my/%s/%d" % (self.get_base_url(), path, self.id)

    def _saas_mail_outcome(self, failure):
        """A customer mail about this record failed (``failure``: why) or went out:
        an incident opens, or closes."""
        incidents = self.env["saas.incident"]
        if failure:
            incidents._saas_open("mail", self, self.env._(
                "A mail about %(name)s could not be sent", name=self.display_name), failure)
        else:
            incidents._saas_resolve("mail", self, self.env._("A mail went out again."))

    def _notify(self, template_xmlid):
        """Send a mail template to the customer; the mail stays in the chatter."""
        template = self.env.ref(template_xmlid)
        for record in self:
            record.message_post_with_source(template, message_type="comment",
                                            subtype_xmlid="mail.mt_comment")
