#!/usr/bin/env python3
"""First boot of the photobox Raspberry Pi image (run once by photobox-firstboot.service, as root).

1. Read ``/boot/firmware/photobox.txt`` (key=value, editable on any computer before the first start).
2. Grow the root partition to the whole SD card.
3. Find the data disk: a filesystem labelled ``PHOTOBOX`` (mounted at /var/lib/photobox by the
   ``LABEL=PHOTOBOX ... nofail`` line in /etc/fstab). Without one, an external disk that is
   completely EMPTY is formatted only if photobox.txt says ``format_empty_disk=yes``; a disk with
   anything on it is never touched. Until a disk is there the status page says what to do and this
   script waits (or, with ``data_on_sd_card=yes``, keeps the data on the SD card).
4. Create /var/lib/photobox, owned by the ``photobox`` user; enable SSH if a key was given.
5. Write /etc/photobox/firstboot.done so it never runs again.

Everything is logged to /run/photobox-firstboot.log, which the status page on port 80 shows.
Stdlib only (it runs with the system python3, not photobox's virtualenv). The decisions are plain
functions over ``lsblk --json`` output and files so tests can feed them fixtures.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

LABEL = "PHOTOBOX"
DATA = Path("/var/lib/photobox")
LOG = Path("/run/photobox-firstboot.log")
DONE = Path("/etc/photobox/firstboot.done")
CONFIG = Path("/boot/firmware/photobox.txt")
FSTAB = Path("/etc/fstab")
GOOD_FSTYPES = {"ext4", "btrfs", "xfs"}  # keep Unix owners and permissions; vfat/exfat/ntfs do not
NOT_DATA_DISKS = ("mmcblk", "zram", "loop", "ram", "sr", "md", "dm-")
EMPTY_PROBE_BYTES = 1024 * 1024


_last_message = None


def log(message: str, *, once: bool = False) -> None:
    """Append a line to the status-page log and the journal (``once``: not again while it repeats)."""
    global _last_message
    if once and message == _last_message:
        return
    _last_message = message
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    try:
        with LOG.open("a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def read_config(path: Path = CONFIG) -> dict[str, str]:
    """``key=value`` lines of photobox.txt; comments and blank lines ignored, keys lower-cased."""
    config: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return config
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        config[key.strip().lower()] = value.strip()
    return config


def yes(config: dict[str, str], key: str) -> bool:
    return config.get(key, "").lower() in {"1", "yes", "true", "on"}


def _walk(devices: list[dict], parent: dict | None = None):
    for dev in devices:
        yield dev, parent
        yield from _walk(dev.get("children") or [], dev)


def find_labelled(lsblk: dict, label: str = LABEL) -> dict | None:
    """The block device whose filesystem label is ``label`` (case-sensitive, like LABEL= in fstab)."""
    for dev, _ in _walk(lsblk.get("blockdevices", [])):
        if dev.get("label") == label:
            return dev
    return None


def empty_disk_candidates(lsblk: dict, root_disk: str | None) -> list[dict]:
    """Whole disks that look unused: no partitions, no filesystem, no partition table, not mounted.

    The SD card, the disk holding / (``root_disk``), optical drives, zram and loop devices are never
    candidates. Call :func:`is_blank` on a candidate before writing anything to it.
    """
    found = []
    for dev in lsblk.get("blockdevices", []):
        name = dev.get("name", "")
        if dev.get("type") != "disk" or name.startswith(NOT_DATA_DISKS) or name == root_disk:
            continue
        if dev.get("children") or dev.get("fstype") or dev.get("pttype") or dev.get("label"):
            continue
        if dev.get("mountpoint") or dev.get("mountpoints") and any(dev["mountpoints"]):
            continue
        if not int(dev.get("size") or 0):
            continue
        found.append(dev)
    return found


def is_blank(path: str | Path, size: int, probe: int = EMPTY_PROBE_BYTES) -> bool:
    """True when the first and last ``probe`` bytes of the disk are all zeros (no MBR, GPT, backup
    GPT, superblock or filesystem signature anywhere a tool would look first)."""
    zero = bytes(min(probe, size))
    with open(path, "rb") as f:
        if f.read(len(zero)) != zero:
            return False
        f.seek(max(0, size - len(zero)))
        return f.read(len(zero)) == zero


def fstab_has_label_line(text: str, label: str = LABEL) -> bool:
    return any(line.split()[:1] == [f"LABEL={label}"] for line in text.splitlines() if not line.lstrip().startswith("#"))


def disable_fstab_line(text: str, label: str = LABEL) -> str:
    """fstab with the ``LABEL=PHOTOBOX`` line commented out (data stays on the SD card)."""
    out = []
    for line in text.splitlines():
        if line.split()[:1] == [f"LABEL={label}"]:
            line = "# disabled by photobox first boot (data_on_sd_card=yes): " + line
        out.append(line)
    return "\n".join(out) + "\n"


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    for line in (result.stdout + result.stderr).strip().splitlines()[-20:]:
        log("  " + line)
    if check and result.returncode:
        raise RuntimeError(f"{cmd[0]} failed with exit status {result.returncode}")
    return result


def lsblk() -> dict:
    out = subprocess.run(["lsblk", "--json", "--bytes", "-o",
                          "NAME,PATH,TYPE,SIZE,FSTYPE,LABEL,PTTYPE,MOUNTPOINT,TRAN,MODEL,RM"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def root_disk() -> str | None:
    """The disk holding / (its parent when / is a partition, itself when it is a whole disk)."""
    src = subprocess.run(["findmnt", "-no", "SOURCE", "/"], capture_output=True, text=True).stdout.strip()
    if not src.startswith("/dev/"):
        return None
    parent = subprocess.run(["lsblk", "-no", "PKNAME", src], capture_output=True, text=True).stdout.strip()
    return parent.splitlines()[0] if parent else Path(src).name


def grow_root() -> None:
    """Grow the last (root) partition and its ext4 filesystem to fill the SD card."""
    src = subprocess.run(["findmnt", "-no", "SOURCE", "/"], capture_output=True, text=True).stdout.strip()
    disk = root_disk()
    if not src.startswith("/dev/") or not disk:
        log(f"root filesystem is {src or 'unknown'}: not growing it")
        return
    partnum = "".join(ch for ch in src[len(f"/dev/{disk}"):] if ch.isdigit())
    result = run("growpart", f"/dev/{disk}", partnum, check=False)
    if result.returncode == 0:
        run("resize2fs", src, check=False)


def format_disk(dev: dict) -> None:
    """One GPT partition over the whole disk, ext4 labelled PHOTOBOX. Only for blank disks."""
    path = dev["path"]
    if not is_blank(path, int(dev["size"])):
        raise RuntimeError(f"{path} is not empty: refusing to format it")
    log(f"formatting the empty disk {path} ({int(dev['size']) / 1e9:.0f} GB) as ext4 labelled {LABEL}")
    subprocess.run(["sfdisk", "--quiet", path], input="label: gpt\n,,L\n", text=True, check=True)
    run("udevadm", "settle")
    part = run("lsblk", "-nro", "PATH", path).stdout.split()[-1]
    run("mkfs.ext4", "-q", "-L", LABEL, "-m", "1", part)
    run("udevadm", "settle")


def describe(dev: dict) -> str:
    bits = [dev.get("path") or dev.get("name", "?"), f"{int(dev.get('size') or 0) / 1e9:.0f} GB"]
    if dev.get("model"):
        bits.append(dev["model"].strip())
    if dev.get("tran"):
        bits.append(dev["tran"])
    return ", ".join(bits)


def find_data_disk(config: dict[str, str]) -> bool:
    """Mount the data disk; return False when there is none yet (the caller waits and asks again)."""
    if subprocess.run(["mountpoint", "-q", str(DATA)]).returncode == 0:
        log(f"{DATA} is mounted")
        return True
    devices = lsblk()
    labelled = find_labelled(devices)
    if labelled:
        fstype = labelled.get("fstype") or "unknown"
        if fstype not in GOOD_FSTYPES:
            log(f"ERROR: {labelled.get('path')} is labelled {LABEL} but holds {fstype}; photobox needs ext4, btrfs "
                f"or xfs (owners and permissions). Copy its files elsewhere and reformat it, e.g. "
                f"sudo mkfs.ext4 -L {LABEL} {labelled.get('path')}. Nothing was changed.", once=True)
            return False
        run("systemctl", "daemon-reload", check=False)
        run("mount", str(DATA))
        return True
    empty = empty_disk_candidates(devices, root_disk())
    blank = [d for d in empty if d.get("path") and is_blank(d["path"], int(d["size"]))]
    if len(blank) == 1 and yes(config, "format_empty_disk"):
        format_disk(blank[0])
        run("systemctl", "daemon-reload", check=False)
        run("mount", str(DATA))
        return True
    if blank:
        log("Found an empty disk: " + "; ".join(describe(d) for d in blank) + ". To let photobox format it, set "
            "format_empty_disk=yes in photobox.txt on the SD card's boot partition and restart, or format it "
            f"yourself as ext4 labelled {LABEL}.", once=True)
    elif empty:
        log("Found a disk without partitions that is not blank; photobox does not touch it.", once=True)
    else:
        log(f"No disk labelled {LABEL} yet. Plug in the SSD (ext4 labelled {LABEL}, or an empty disk with "
            "format_empty_disk=yes in photobox.txt). Waiting...", once=True)
    return False


def prepare_data_folder() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwnam("photobox")
    os.chown(DATA, user.pw_uid, user.pw_gid)
    DATA.chmod(0o750)
    log(f"{DATA} ready for the photobox user")


def enable_ssh(key: str) -> None:
    user = pwd.getpwnam("pi")
    ssh = Path(user.pw_dir) / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(key.strip() + "\n")
    (ssh / "authorized_keys").chmod(0o600)
    for path in (ssh, ssh / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    run("ssh-keygen", "-A")
    run("systemctl", "enable", "--now", "ssh.service", check=False)
    log("SSH enabled for user pi (key login only)")


def main() -> int:
    log("photobox first boot started")
    config = read_config()
    try:
        grow_root()
    except Exception as exc:  # a full-size root is nice to have, not a reason to stop
        log(f"could not grow the root partition: {exc}")
    if yes(config, "data_on_sd_card"):
        log("data_on_sd_card=yes: keeping the photos on the SD card")
        FSTAB.write_text(disable_fstab_line(FSTAB.read_text()))
        run("systemctl", "daemon-reload", check=False)
    else:
        while not find_data_disk(config):
            time.sleep(15)
            config = read_config()
            if yes(config, "data_on_sd_card"):
                return main()
    prepare_data_folder()
    if config.get("ssh_authorized_key"):
        enable_ssh(config["ssh_authorized_key"])
    DONE.parent.mkdir(parents=True, exist_ok=True)
    DONE.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
    log("first boot done: starting photobox. Open http://photobox.local/ and create the owner account.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
