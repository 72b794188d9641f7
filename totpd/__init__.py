"""totpd: a phone line to your authenticator."""

__version__ = "0.1.0"
