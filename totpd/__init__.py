"""totpd: a phone line to your authenticator."""

from importlib import resources  # not `files`: the submodule totpd.files would shadow it

__version__ = "0.1.0"


def build() -> str:
    """Which build this is: the package build writes it (e.g. "deb arm64, git 1a2b3c4d5e6f")."""
    try:
        return resources.files(__name__).joinpath("BUILD").read_text().strip()
    except FileNotFoundError:
        return "from source"
