"""``/saas/backup/<id>/download/<format>``: a backup's files for SaaS managers.

``odoo`` is Odoo's own backup zip (``dump.sql``, ``filestore/``,
``manifest.json``), produced from the stored backup on request and restorable
by any Odoo 18 database manager; ``dump`` and ``filestore`` are the stored
files themselves.  Access is the backup's own (SaaS managers, their
companies); each download is written in the instance's chatter.
"""

from werkzeug.wsgi import wrap_file

from odoo import http
from odoo.http import request

FORMATS = {"odoo": "application/zip", "dump": "application/octet-stream",
           "filestore": "application/gzip"}


class SaasBackupDownload(http.Controller):

    @http.route("/saas/backup/<int:backup_id>/download/<string:fmt>", type="http",
                auth="user", methods=["GET"], sitemap=False)
    def download(self, backup_id, fmt):
        if "saas.backup" not in request.env or fmt not in FORMATS:
            raise request.not_found()
        backup = request.env["saas.backup"].browse(backup_id).exists()
        if not backup:
            raise request.not_found()
        backup.check_access("read")
        return download_response(backup, fmt)


def download_response(backup, fmt):
    """A streamed response with ``backup``'s files in ``fmt`` (the caller checked access)."""
    handle, filename, size = backup._saas_download(fmt)
    response = request.make_response(
        wrap_file(request.httprequest.environ, handle),
        headers=[("Content-Type", FORMATS[fmt]), ("Content-Length", str(size)),
                 ("Content-Disposition", http.content_disposition(filename)),
                 ("Cache-Control", "no-store")])
    response.direct_passthrough = True
    return response
