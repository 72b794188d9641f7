"""`python -m totpd` is the `totpd` command."""

from totpd.cli import main

raise SystemExit(main())
