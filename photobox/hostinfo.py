"""What ``photobox doctor`` can learn about the machine: storage, power, memory and CPU.

Aimed at the Raspberry Pi, where the usual trouble is an SD card holding the photos, a weak
power supply (under-voltage throttles the CPU and corrupts USB disks), no swap on a 1-4 GB board,
and a CPU without the dot-product instructions int8 models want. Every probe reads files under a
``root`` folder (``/`` normally) so tests can hand it a fake ``/proc`` and ``/sys`` tree; each
check returns ``(level, detail)`` with level OK, WARN or FAIL, as ``photobox.doctor`` expects.
Nothing here needs root, and a missing file means "not known here", never an error.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

__all__ = [
    "Storage", "board_model", "cpu_check", "cpu_features", "memory", "parse_throttled", "power_check",
    "storage_check", "storage_for", "swap_check",
]

GiB = 1024**3
SMALL_RAM = 4 * GiB

# Bits of the firmware's get_throttled word (Raspberry Pi documentation, "vcgencmd get_throttled").
THROTTLE_BITS = {
    0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now", 3: "soft temperature limit now",
    16: "under-voltage since boot", 17: "frequency capping since boot", 18: "throttling since boot",
    19: "soft temperature limit since boot",
}
UNDERVOLTAGE_BITS = (0, 16)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


@dataclasses.dataclass(frozen=True, slots=True)
class Storage:
    """The filesystem and block device holding a folder."""

    mount_point: str
    fstype: str
    source: str
    disk: str | None = None  # e.g. "mmcblk0", "sda", "nvme0n1"; None for network/virtual filesystems
    kind: str = "unknown"  # "sd card", "emmc", "usb", "nvme", "disk", "network", "virtual"
    rotational: bool | None = None
    removable: bool | None = None


NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs", "9p", "ceph", "glusterfs"}


def _mounts(mountinfo: str) -> list[tuple[str, str, str, str]]:
    """(major:minor, mount point, fstype, source) of each line of /proc/self/mountinfo."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        out.append((fields[2], _unescape(fields[4]), rest[0], _unescape(rest[1])))
    return out


def _disk_of(root: Path, majmin: str) -> tuple[str, Path] | None:
    """The whole-disk name and its sysfs folder for a partition's or disk's major:minor."""
    link = root / "sys/dev/block" / majmin
    try:
        target = Path(os.path.realpath(link))
    except OSError:
        return None
    if not target.exists():
        return None
    if (target / "partition").exists():
        target = target.parent
    return target.name, target


def storage_for(path: str | os.PathLike, root: Path = Path("/")) -> Storage | None:
    """Which mount and device hold ``path`` (an absolute path on the machine ``root`` describes)."""
    text = _read(root, "proc/self/mountinfo")
    if not text:
        return None
    path = os.path.normpath(str(path))
    best = None
    for majmin, mount_point, fstype, source in _mounts(text):
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= len(best[1])):  # later mounts hide earlier ones
            best = (majmin, mount_point, fstype, source)
    if best is None:
        return None
    majmin, mount_point, fstype, source = best
    if fstype in NETWORK_FS or fstype.startswith("fuse.") and ":" in source:
        return Storage(mount_point, fstype, source, kind="network")
    found = _disk_of(root, majmin) if not majmin.startswith("0:") else None
    if found is None:
        return Storage(mount_point, fstype, source, kind="virtual" if majmin.startswith("0:") else "unknown")
    disk, sysdir = found
    rotational = _read(root, f"sys/block/{disk}/queue/rotational")
    removable = _read(root, f"sys/block/{disk}/removable")
    if disk.startswith("mmcblk"):
        mmc_type = (_read(root, f"sys/block/{disk}/device/type") or "SD").strip().upper()
        kind = "emmc" if mmc_type == "MMC" else "sd card"
    elif "/usb" in str(sysdir):
        kind = "usb"
    elif disk.startswith("nvme"):
        kind = "nvme"
    else:
        kind = "disk"
    return Storage(mount_point, fstype, source, disk, kind,
                   rotational=None if rotational is None else rotational.strip() == "1",
                   removable=None if removable is None else removable.strip() == "1")


def storage_check(path: str | os.PathLike, root: Path = Path("/")) -> tuple[str, str]:
    """WARN when the data folder is on an SD card (slow, wears out) or a network filesystem (SQLite locking)."""
    found = storage_for(path, root)
    if found is None:
        return "OK", "device not known here (no /proc/self/mountinfo)"
    where = f"{found.mount_point} ({found.fstype} on {found.source})"
    if found.kind == "sd card":
        return "WARN", (f"the data folder is on the SD card {found.disk}: slow, and wears the card out. Put it on "
                        f"an SSD (USB 3 or NVMe): see the Raspberry Pi section of the README. {where}")
    if found.kind == "network":
        return "WARN", (f"the data folder is on a network filesystem ({found.fstype}): SQLite needs a local disk "
                        f"for safe locking; keep photobox.db local and add the share as an external library. {where}")
    labels = {"usb": "USB disk", "nvme": "NVMe SSD", "emmc": "eMMC", "disk": "disk", "virtual": "virtual filesystem",
              "unknown": "unknown device"}
    detail = labels.get(found.kind, found.kind)
    if found.disk:
        detail += f" {found.disk}"
    if found.rotational is not None:
        detail += ", spinning (HDD)" if found.rotational else ", solid-state"
    return "OK", f"{detail}: {where}"


def parse_throttled(text: str) -> int | None:
    """The flag word from ``throttled=0x50005`` (vcgencmd) or ``50005`` (the sysfs file, hex)."""
    match = re.search(r"(?:throttled=)?(?:0x)?([0-9a-fA-F]+)\s*$", text.strip())
    return int(match[1], 16) if match else None


def _throttled(root: Path, vcgencmd: str | None) -> int | None:
    text = _read(root, "sys/devices/platform/soc/soc:firmware/get_throttled")
    if text is not None:
        return parse_throttled(text)
    if vcgencmd:
        try:
            result = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode == 0:
            return parse_throttled(result.stdout)
    return None


def power_check(root: Path = Path("/"), vcgencmd: str | None = None) -> tuple[str, str] | None:
    """Under-voltage and throttling flags of a Raspberry Pi; None on machines that do not report them."""
    flags = _throttled(root, vcgencmd)
    if flags is None:
        # The rpi_volt hwmon driver reports under-voltage on kernels without the firmware file.
        for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*")):
            if (_read(root, str(hwmon.relative_to(root) / "name")) or "").strip() == "rpi_volt":
                alarm = (_read(root, str(hwmon.relative_to(root) / "in0_lcrit_alarm")) or "0").strip()
                if alarm == "1":
                    return "WARN", "under-voltage now: use the official power supply (5.1 V, 3 A for a Pi 4; 5 A for a Pi 5)"
                return "OK", "no under-voltage reported"
        return None
    if not flags:
        return "OK", "no under-voltage or throttling since boot"
    names = [name for bit, name in THROTTLE_BITS.items() if flags & (1 << bit)]
    advice = ""
    if any(flags & (1 << bit) for bit in UNDERVOLTAGE_BITS):
        advice = ("; the power supply is too weak (or the USB SSD draws too much): use the official supply "
                  "or a powered USB hub, or the SSD may drop out and corrupt data")
    elif flags & (1 << 3 | 1 << 19 | 1 << 2 | 1 << 18):
        advice = "; the Pi runs hot: add a heatsink or fan for thumbnails and ML jobs"
    return "WARN", f"flags 0x{flags:x}: {', '.join(names)}{advice}"


def memory(root: Path = Path("/")) -> dict[str, int]:
    """Fields of /proc/meminfo in bytes (MemTotal, SwapTotal, ...)."""
    values = {}
    for line in (_read(root, "proc/meminfo") or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return values


def swap_check(root: Path = Path("/")) -> tuple[str, str]:
    """WARN when a box with less than 4 GB of RAM has no swap (ML models and video decode then get OOM-killed)."""
    mem = memory(root)
    total, swap = mem.get("MemTotal"), mem.get("SwapTotal")
    if total is None:
        return "OK", "memory not known here"
    swaps = [line.split()[0] for line in (_read(root, "proc/swaps") or "").splitlines()[1:] if line.strip()]
    if swap is None:
        swap = 0
    detail = f"RAM {total / GiB:.1f} GiB, swap {swap / GiB:.1f} GiB"
    if swaps:
        detail += f" ({', '.join(swaps)})"
    if swap == 0 and total < SMALL_RAM:
        return "WARN", (f"{detail}: no swap with less than 4 GiB of RAM; the ML jobs can be killed for memory. "
                        "Add swap: sudo apt-get install systemd-zram-generator (or dphys-swapfile)")
    return "OK", detail


def cpu_features(root: Path = Path("/")) -> set[str]:
    """The CPU's feature flags (``Features`` on ARM, ``flags`` on x86) from /proc/cpuinfo."""
    for line in (_read(root, "proc/cpuinfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("features", "flags"):
            return set(value.split())
    return set()


def cpu_check(root: Path = Path("/"), machine: str | None = None) -> tuple[str, str]:
    """What the CPU offers onnxruntime's int8 kernels: dot-product (ARM) or VNNI/AVX2 (x86)."""
    import platform

    machine = machine or platform.machine()
    flags = cpu_features(root)
    arch = machine.lower()
    if arch in ("aarch64", "arm64"):
        if "asimddp" in flags:
            return "OK", f"{machine}: NEON and dot-product instructions (asimddp): fast int8 models"
        if "asimd" in flags:
            return "OK", (f"{machine}: NEON without dot-product instructions (e.g. a Pi 4's Cortex-A72): int8 "
                          "models work, about half as fast as on a Pi 5")
        return "WARN", f"{machine}: no NEON (asimd) flag reported; ML will be slow"
    if arch.startswith(("armv7", "armv6", "arm")):
        return "WARN", f"{machine}: a 32-bit ARM system; onnxruntime wheels need a 64-bit OS (arm64)"
    if arch in ("x86_64", "amd64"):
        if flags & {"avx512_vnni", "avx_vnni", "avx512vnni"}:
            return "OK", f"{machine}: AVX2 and VNNI: fast int8 models"
        if "avx2" in flags:
            return "OK", (f"{machine}: AVX2 without VNNI: int8 models run, with uint8 weights (onnxruntime's "
                          "int8-weight kernel saturates on such CPUs)")
        return "WARN", f"{machine}: no AVX2: onnxruntime's int8 kernels are slow on this CPU"
    return "OK", f"{machine}: CPU flags not checked on this architecture"


def board_model(root: Path = Path("/")) -> str | None:
    """e.g. "Raspberry Pi 4 Model B Rev 1.5" from the device tree; None on PCs."""
    text = _read(root, "proc/device-tree/model")
    return text.replace("\x00", "").strip() or None if text else None
