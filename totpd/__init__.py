"""totpd: a phone line to your authenticator."""


def __getattr__(name: str) -> str:
    # One source for the version: pyproject.toml's, as installed. Looked up on first use only,
    # so importing totpd's pure modules does not load the package metadata machinery.
    if name == "__version__":
        from importlib.metadata import version

        return version("totpd")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
