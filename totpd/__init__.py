"""totpd: a phone line to your authenticator."""

from importlib import resources  # not `files`: the submodule totpd.files would shadow it


def __getattr__(name: str) -> str:
    # One source for the version: pyproject.toml's, as installed. Looked up on first use only,
    # so importing totpd's pure modules does not load the package metadata machinery.
    if name == "__version__":
        from importlib.metadata import version

        return version("totpd")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build() -> str:
    """Which build this is: the package build writes it (e.g. "deb arm64, git 1a2b3c4d5e6f")."""
    try:
        return resources.files(__name__).joinpath("BUILD").read_text().strip()
    except FileNotFoundError:
        return "from source"
