"""The Raspberry Pi image's pieces and ``scripts/install``, tested without booting anything.

``scripts/install --root DIR`` runs for real into a temporary tree (the service user, folders,
config, unit, drop-in, CLI wrapper, avahi file), the units are checked with ``systemd-analyze
verify``, the first-boot decisions run on ``lsblk --json`` fixtures and real blank/non-blank
files, and the status page is served on 127.0.0.1. The image build itself (debootstrap + qemu,
slow, needs the Debian mirror and PyPI) runs only with ``PHOTOBOX_IMAGE_TEST=1``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "scripts/install"
OVERLAY = ROOT / "packaging/rootfs"
LIB = OVERLAY / "usr/local/lib/photobox"


def load(name: str, path: Path):
    """Import a stdlib-only script of the image (they are not part of the photobox package)."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


firstboot = load("photobox_firstboot", LIB / "firstboot.py")
status_page = load("photobox_status_page", LIB / "status_page.py")
check_wheels = load("photobox_check_wheels", ROOT / "packaging/check-wheels")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="scripts/install runs as root")


def target_tree(tmp_path: Path) -> Path:
    """An almost empty Debian root: account files (so useradd --root works) and an avahi folder."""
    root = tmp_path / "target"
    (root / "etc/avahi/services").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    for f in ("shadow", "gshadow"):
        (root / "etc" / f).chmod(0o600)
    return root


def fake_venv(tmp_path: Path) -> Path:
    """Stands in for /opt/photobox/venv so systemd-analyze finds an executable ExecStart."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/photobox").write_text("#!/bin/sh\nexit 0\n")
    (venv / "bin/photobox").chmod(0o755)
    return venv


def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=120)


def verify_units(unit_dir: Path, *units: str) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    r = subprocess.run([tool, "verify", *units], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"})
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "photobox" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


@needs_root
def test_install_into_a_root_then_upgrade_then_uninstall(tmp_path):
    root, venv = target_tree(tmp_path), fake_venv(tmp_path)
    r = install("--root", str(root), "--no-venv", "--venv", str(venv), "--data", "/srv/photos", "--port", "8081")
    assert r.returncode == 0, r.stdout + r.stderr

    user = next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
                if line.startswith("photobox:"))
    assert user[5] == "/srv/photos" and user[6] == "/usr/sbin/nologin" and int(user[2]) < 1000  # a system user
    data = root / "srv/photos"
    assert data.is_dir() and data.stat().st_uid == int(user[2]) and oct(data.stat().st_mode & 0o777) == "0o750"
    env = (root / "etc/photobox/photobox.env").read_text()
    assert "PHOTOBOX_DATA_DIR=/srv/photos" in env and "PHOTOBOX_PORT=8081" in env
    assert "PHOTOBOX_CONFIG=/etc/photobox/photobox.toml" in env
    assert (root / "etc/systemd/system/photobox.service").read_text() == (ROOT / "systemd/photobox.service").read_text()
    dropin = (root / "etc/systemd/system/photobox.service.d/50-install.conf").read_text()
    assert f"ExecStart={venv}/bin/photobox serve" in dropin and "ReadWritePaths=/srv/photos" in dropin
    assert "RequiresMountsFor=/srv/photos" in dropin
    wants = root / "etc/systemd/system/multi-user.target.wants/photobox.service"
    assert wants.is_symlink()
    cli = (root / "usr/local/bin/photobox").read_text()
    assert f"{venv}/bin/photobox" in cli and "runuser -u photobox" in cli and os.access(root / "usr/local/bin/photobox", os.X_OK)
    avahi = ET.parse(root / "etc/avahi/services/photobox.service").getroot()
    assert avahi.find("service/port").text == "8081" and avahi.find("service/type").text == "_http._tcp"
    verify_units(root / "etc/systemd/system", "photobox.service")

    # Re-running is an upgrade: the owner's edits and the data stay, nothing is duplicated.
    (root / "etc/photobox/photobox.toml").write_text('log_level = "debug"\n')
    (data / "photobox.db").write_bytes(b"precious")
    r = install("--root", str(root), "--no-venv", "--venv", str(venv), "--data", "/srv/photos", "--port", "8081")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / "etc/photobox/photobox.toml").read_text() == 'log_level = "debug"\n'
    assert (root / "etc/passwd").read_text().count("photobox:") == 1
    assert (data / "photobox.db").read_bytes() == b"precious"

    venv_in_root = root / str(venv).lstrip("/")
    (venv_in_root / "bin").mkdir(parents=True)  # what a real (non --no-venv) install made inside the root
    r = install("--root", str(root), "--venv", str(venv), "--uninstall")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Kept" in r.stdout
    for gone in ("etc/systemd/system/photobox.service", "usr/local/bin/photobox", "etc/avahi/services/photobox.service"):
        assert not (root / gone).exists(), gone
    assert not wants.is_symlink() and not venv_in_root.exists()
    assert (data / "photobox.db").read_bytes() == b"precious"
    assert (root / "etc/photobox/photobox.toml").exists() and "photobox:" in (root / "etc/passwd").read_text()


def test_install_refuses_bad_arguments():
    assert install("--data", "relative/path").returncode == 2
    assert install("--port", "http").returncode == 2
    assert install("--frobnicate").returncode == 2


def test_image_units_verify(tmp_path):
    """The image's units and photobox.service with its image drop-in, as they sit in the rootfs."""
    units = tmp_path / "system"
    shutil.copytree(OVERLAY / "etc/systemd/system", units)
    venv = fake_venv(tmp_path)
    unit = (ROOT / "systemd/photobox.service").read_text().replace("/opt/photobox/venv", str(venv))
    (units / "photobox.service").write_text(unit)
    verify_units(units, "photobox.service", "photobox-firstboot.service", "photobox-status.service",
                 "photobox-models.service")
    firstboot_unit = (units / "photobox-firstboot.service").read_text()
    assert "ConditionPathExists=!/etc/photobox/firstboot.done" in firstboot_unit and "Before=photobox.service" in firstboot_unit
    assert "After=photobox-firstboot.service" in (units / "photobox.service.d/10-image.conf").read_text()


def test_image_configuration_files():
    assert (OVERLAY / "etc/hostname").read_text().strip() == "photobox"
    service = ET.parse(OVERLAY / "etc/avahi/services/photobox.service").getroot().find("service")
    assert service.find("type").text == "_http._tcp" and service.find("port").text == "80"
    fstab = (OVERLAY / "etc/fstab").read_text()
    line = next(line for line in fstab.splitlines() if line.startswith("LABEL=PHOTOBOX"))
    assert line.split()[1] == "/var/lib/photobox" and "nofail" in line.split()[3]
    unattended = (OVERLAY / "etc/apt/apt.conf.d/52photobox-unattended-upgrades").read_text()
    assert "label=Debian-Security" in unattended and 'Automatic-Reboot "false"' in unattended
    assert 'Unattended-Upgrade "1"' in (OVERLAY / "etc/apt/apt.conf.d/20auto-upgrades").read_text()
    assert "ip_unprivileged_port_start = 80" in (OVERLAY / "etc/sysctl.d/60-photobox-http.conf").read_text()
    assert firstboot.read_config(OVERLAY / "boot/firmware/photobox.txt") == {
        "format_empty_disk": "no", "data_on_sd_card": "no", "ssh_authorized_key": ""}
    for script in ("packaging/build-image.sh", "scripts/install", "packaging/rootfs/usr/local/sbin/photobox-update"):
        r = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
        assert r.returncode == 0 and os.access(ROOT / script, os.X_OK), (script, r.stderr)


# -- first boot -------------------------------------------------------------------------------

def disk(name, size=500_107_862_016, *, children=None, fstype=None, label=None, pttype=None, tran="usb"):
    return {"name": name, "path": f"/dev/{name}", "type": "disk", "size": size, "fstype": fstype, "label": label,
            "pttype": pttype, "mountpoint": None, "tran": tran, "model": "Samsung SSD", "rm": False,
            "children": children}


def part(name, *, fstype="ext4", label=None, mountpoint=None):
    return {"name": name, "path": f"/dev/{name}", "type": "part", "size": 1, "fstype": fstype, "label": label,
            "pttype": None, "mountpoint": mountpoint}


SD = disk("mmcblk0", 31_914_983_424, pttype="dos", tran=None,
          children=[part("mmcblk0p1", fstype="vfat", label="RASPIFIRM", mountpoint="/boot/firmware"),
                    part("mmcblk0p2", label="PHOTOBOX-ROOT", mountpoint="/")])


def test_firstboot_finds_the_labelled_ssd():
    labelled = {"blockdevices": [SD, disk("sda", pttype="gpt", children=[part("sda1", label="PHOTOBOX")])]}
    assert firstboot.find_labelled(labelled)["path"] == "/dev/sda1"
    assert firstboot.find_labelled({"blockdevices": [SD]}) is None  # PHOTOBOX-ROOT is not PHOTOBOX
    ntfs = {"blockdevices": [SD, disk("sda", pttype="gpt", children=[part("sda1", fstype="ntfs", label="PHOTOBOX")])]}
    assert firstboot.find_labelled(ntfs)["fstype"] not in firstboot.GOOD_FSTYPES


def test_firstboot_offers_only_empty_disks():
    devices = {"blockdevices": [
        SD,
        disk("sda"),                                                     # nothing on it: a candidate
        disk("sdb", pttype="gpt", children=[part("sdb1", fstype="ntfs")]),  # someone's data: never
        disk("sdc", fstype="ext4"),                                      # a filesystem on the whole disk: never
        disk("sdd", pttype="dos"),                                       # a partition table: never
        disk("sde", size=0),                                             # an empty card reader: never
        {**disk("zram0"), "tran": None},                                 # swap in RAM: never
    ]}
    assert [d["name"] for d in firstboot.empty_disk_candidates(devices, root_disk="mmcblk0")] == ["sda"]
    # The disk holding / is never a candidate, even if lsblk shows it bare.
    assert firstboot.empty_disk_candidates({"blockdevices": [disk("sda")]}, root_disk="sda") == []


def test_firstboot_blank_check_reads_the_disk(tmp_path):
    size = 8 * 1024 * 1024
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"")
    os.truncate(blank, size)  # sparse: all zeros
    assert firstboot.is_blank(blank, size)
    with_backup_gpt = tmp_path / "gpt.img"
    shutil.copy(blank, with_backup_gpt)
    with open(with_backup_gpt, "r+b") as f:  # a backup GPT header lives in the last sectors
        f.seek(size - 512)
        f.write(b"EFI PART")
    assert not firstboot.is_blank(with_backup_gpt, size)
    mbr = tmp_path / "mbr.img"
    shutil.copy(blank, mbr)
    with open(mbr, "r+b") as f:
        f.seek(510)
        f.write(b"\x55\xaa")
    assert not firstboot.is_blank(mbr, size)


def test_firstboot_fstab_and_config(tmp_path):
    fstab = (OVERLAY / "etc/fstab").read_text()
    assert firstboot.fstab_has_label_line(fstab)
    disabled = firstboot.disable_fstab_line(fstab)
    assert not firstboot.fstab_has_label_line(disabled) and "data_on_sd_card=yes" in disabled
    cfg = tmp_path / "photobox.txt"
    cfg.write_text("# comment\nFormat_Empty_Disk = Yes\nssh_authorized_key=ssh-ed25519 AAAA me@laptop\nnonsense\n")
    config = firstboot.read_config(cfg)
    assert firstboot.yes(config, "format_empty_disk") and not firstboot.yes(config, "data_on_sd_card")
    assert config["ssh_authorized_key"] == "ssh-ed25519 AAAA me@laptop"
    assert firstboot.read_config(tmp_path / "missing.txt") == {}


def test_status_page_shows_the_log(tmp_path):
    log = tmp_path / "firstboot.log"
    log.write_text("10:00:01 photobox first boot started\n10:00:02 <b>No disk labelled PHOTOBOX yet. Waiting...\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), status_page.make_handler(log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        r = httpx.get(url + "/any/path", timeout=5)
        assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
        assert "first boot started" in r.text and "&lt;b&gt;No disk" in r.text  # escaped
        assert "format_empty_disk=yes" in r.text  # the hint while it waits for a disk
        assert '<meta http-equiv="refresh" content="5">' in r.text and "<script" not in r.text
        assert 'name="viewport"' in r.text
        log.write_text("10:00:09 first boot done: starting photobox.\n")
        assert "format_empty_disk" not in httpx.get(url, timeout=5).text
        assert httpx.head(url, timeout=5).status_code == 503
    finally:
        server.shutdown()
        server.server_close()


# -- wheels -----------------------------------------------------------------------------------

def test_check_wheels_classifies_release_files():
    c = check_wheels.classify
    assert c(["numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl"], "3.11") == "cp311 aarch64"
    assert c(["tokenizers-0.23.3-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"], "3.11") == "abi3 aarch64"
    assert c(["sqlite_vec-0.1.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"], "3.11") == "py3 aarch64"
    assert c(["jinja2-3.1.6-py3-none-any.whl", "jinja2-3.1.6.tar.gz"], "3.11") == "pure"
    assert c(["numpy-2.5.5-cp312-cp312-manylinux_2_28_aarch64.whl", "numpy-2.5.5.tar.gz"], "3.11") == "sdist only"
    assert c(["x-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"], "3.11") == "MISSING"
    assert c(["x-1.0-cp311-cp311-manylinux_2_39_aarch64.whl"], "3.11") == "MISSING"  # needs a newer glibc than bookworm
    assert check_wheels.requirement_name("ai-edge-litert>=1.2; platform_machine == 'x86_64'") == "ai-edge-litert"
    assert check_wheels.requirement_name("litestar[jinja]>=2.15,<3") == "litestar"
    assert not check_wheels.applies_on_pi("pytest; extra == 'test'")
    assert check_wheels.applies_on_pi("ai-edge-litert>=1.2; platform_machine == 'x86_64' or platform_machine == 'aarch64'")


# -- the image itself (opt-in) ----------------------------------------------------------------

@pytest.mark.skipif(os.environ.get("PHOTOBOX_IMAGE_TEST") != "1",
                    reason="set PHOTOBOX_IMAGE_TEST=1 to debootstrap the arm64 image (slow; needs Debian mirror and PyPI)")
def test_image_rootfs_runs_photobox_under_qemu():
    out = Path(os.environ.get("PHOTOBOX_IMAGE_OUT", "/var/tmp/photobox-image"))
    r = subprocess.run(["bash", str(ROOT / "packaging/build-image.sh"), "--out", str(out)], capture_output=True,
                       text=True, timeout=4 * 3600)
    assert r.returncode == 0, r.stderr[-5000:]
    rootfs = out / "rootfs"
    r = subprocess.run(["chroot", str(rootfs), "/opt/photobox/venv/bin/photobox", "--version"],
                       capture_output=True, text=True, timeout=600)
    from photobox import __version__
    assert r.returncode == 0 and r.stdout.strip() == f"photobox {__version__}", r.stderr
    assert "aarch64" in subprocess.run(["file", "-L", str(rootfs / "usr/bin/python3")], capture_output=True,
                                       text=True).stdout or (rootfs / "lib/ld-linux-aarch64.so.1").exists()
    for enabled in ("multi-user.target.wants/photobox.service", "multi-user.target.wants/photobox-firstboot.service",
                    "multi-user.target.wants/avahi-daemon.service"):
        assert (rootfs / "etc/systemd/system" / enabled).is_symlink(), enabled  # absolute links: is_symlink
    assert "photobox:" in (rootfs / "etc/passwd").read_text()
    assert (out / "MANIFEST.txt").read_text().count(".whl") > 20
