import logging

from odoo import models
from odoo.exceptions import UserError

from ..engine import vault
from .saas_settings import server_key

_logger = logging.getLogger(__name__)


class SaasSecretMixin(models.AbstractModel):
    """Encrypt and decrypt secrets with the server's key.

    The key is read from the server configuration (``saas_manager_key`` in
    odoo.conf, or the ``SAAS_MANAGER_KEY`` environment variable), never from
    the database, so a database dump alone does not reveal the secrets.
    """

    _name = "saas.secret.mixin"
    _description = "SaaS Encrypted Secrets"

    def _server_key(self):
        return server_key()

    def _encrypt(self, plaintext):
        try:
            return vault.encrypt(self._server_key(), plaintext)
        except vault.VaultError as exc:
            raise UserError(str(exc)) from exc

    def _decrypt_into(self, token_field, clear_field):
        """Compute helper: ``clear_field`` = decrypted ``token_field``, never raising.

        Only for the real user in the field's ``groups`` (``env.user`` stays the
        caller under ``sudo()``): ``groups=`` guards reads, not attribute access,
        so a mail template, composer or report rendered by anyone else would
        otherwise compute the secret.
        """
        groups = [name.strip() for name in (self._fields[clear_field].groups or "").split(",")
                  if name.strip()]
        user = self.env.user
        allowed = user._is_superuser() or not groups or any(map(user.has_group, groups))
        for record in self:
            record[clear_field] = allowed and self._decrypt(record[token_field], strict=False)

    def _decrypt(self, token, strict=True):
        """Decrypt ``token``; with ``strict=False`` an undecryptable token reads as
        empty (a form must still open after a key change) and is logged."""
        try:
            return vault.decrypt(self._server_key(), token)
        except vault.VaultError as exc:
            if not strict:
                _logger.info("%s: a stored secret cannot be decrypted: %s", self._name, exc)
                return ""
            raise UserError(str(exc)) from exc
