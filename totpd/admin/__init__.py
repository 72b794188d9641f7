"""The local admin web page: sign in, enrol accounts (paste, upload, camera), see the lists.

Served by the daemon on its own loopback listener (`[admin] listen`); see
docs/admin-page.md.
"""

from totpd.admin.app import create_admin_app

__all__ = ["create_admin_app"]
