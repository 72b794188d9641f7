"""Which key seals a credential: "auto" takes a TPM2 the kernel and systemd can use, also one
the firmware did not announce (systemd 252's own "auto" leaves that one out).

The reports are `systemd-creds has-tpm2` as systemd 252 prints them. Sealing to a real TPM2,
and a foreign TPM2 refusing the result, is `make test-vm`'s (tests/vm): this host has none.
"""

import subprocess
from pathlib import Path

import pytest

from totpd.secrets.credential import choose_key, tpm2_usable

# A VM booted without UEFI (the test VM), or a TPM module on a Raspberry Pi.
WITHOUT_FIRMWARE = "partial\n-firmware\n+driver\n+system\n+subsystem\n"
EVERYTHING = "yes\n+firmware\n+driver\n+system\n+subsystem\n"
NO_TPM = "partial\n-firmware\n-driver\n+system\n-subsystem\n"
NO_SYSTEM_SUPPORT = "no\n-firmware\n+driver\n-system\n+subsystem\n"


@pytest.mark.parametrize(
    ("report", "in_container", "usable"),
    [
        (WITHOUT_FIRMWARE, False, True),
        (EVERYTHING, False, True),
        (WITHOUT_FIRMWARE, True, False),  # a container may see a TPM2 that is not its own
        (NO_TPM, False, False),
        (NO_SYSTEM_SUPPORT, False, False),
        ("", False, False),  # systemd-creds said nothing
    ],
)
def test_a_tpm2_is_used_when_the_kernel_drives_it_and_systemd_supports_it(
    report: str, in_container: bool, usable: bool
) -> None:
    assert tpm2_usable(report, in_container) is usable


@pytest.mark.parametrize("with_key", ["host", "tpm2", "host+tpm2"])
def test_an_explicit_key_stands(with_key: str) -> None:
    assert choose_key(with_key) == with_key


def test_auto_on_this_host_takes_a_tpm2_only_where_the_kernel_has_one() -> None:
    container = subprocess.run(
        ["systemd-detect-virt", "--container"], capture_output=True, text=True, check=False
    ).stdout.strip()
    # The kernel's resource-managed TPM device is what "+driver" reports.
    has_tpm2 = Path("/dev/tpmrm0").exists() and container == "none"
    assert choose_key("auto") == ("host+tpm2" if has_tpm2 else "auto")
