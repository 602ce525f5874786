"""``photobox doctor`` on a Raspberry Pi: storage, power, swap and CPU, read from fake /proc and /sys trees.

The trees are plain files and symlinks laid out like a Pi 4's (paths copied from real boards),
handed to the probes through their ``root`` argument; nothing of photobox is mocked.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from photobox import hostinfo
from photobox.doctor import run_checks

SD_DEVPATH = "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0"
USB_DEVPATH = ("devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb2/2-2/2-2:1.0/host0/"
               "target0:0:0/0:0:0:0/block/sda")
PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.5
"""
PI5_FEATURES = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def add_disk(root: Path, devpath: str, disk: str, major: int, partitions: int = 2, *, rotational: str = "0",
             removable: str = "0", mmc_type: str | None = None) -> None:
    """A whole disk and its partitions, linked from /sys/dev/block and /sys/block as the kernel does."""
    base = root / "sys" / devpath
    (base / "queue").mkdir(parents=True)
    (base / "queue/rotational").write_text(rotational + "\n")
    (base / "removable").write_text(removable + "\n")
    if mmc_type:
        write(base, "device/type", mmc_type + "\n")
    (root / "sys/block").mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(base, root / "sys/block"), root / "sys/block" / disk)
    (root / "sys/dev/block").mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(base, root / "sys/dev/block"), root / f"sys/dev/block/{major}:0")
    for n in range(1, partitions + 1):
        part = base / (f"{disk}p{n}" if disk[-1].isdigit() else f"{disk}{n}")
        part.mkdir()
        (part / "partition").write_text(f"{n}\n")
        os.symlink(os.path.relpath(part, root / "sys/dev/block"), root / f"sys/dev/block/{major}:{n}")


def pi_tree(root: Path, *, data_on_ssd: bool, mem_kb: int = 3_884_000, swap: bool = True,
            throttled: str | None = "0") -> Path:
    """A Raspberry Pi 4 booted from its SD card, optionally with a USB SSD at /var/lib/photobox."""
    add_disk(root, SD_DEVPATH, "mmcblk0", 179, mmc_type="SD")
    mounts = ["22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/root rw",
              "23 22 179:1 / /boot/firmware rw,relatime shared:2 - vfat /dev/mmcblk0p1 rw"]
    if data_on_ssd:
        add_disk(root, USB_DEVPATH, "sda", 8, partitions=1)
        mounts.append("40 22 8:1 / /var/lib/photobox rw,noatime shared:20 - ext4 /dev/sda1 rw")
    mounts.append("50 22 0:45 / /srv/nas rw,relatime shared:30 - nfs4 nas.lan:/photos rw")
    write(root, "proc/self/mountinfo", "\n".join(mounts) + "\n")
    write(root, "proc/cpuinfo", PI4_CPUINFO)
    write(root, "proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.5\x00")
    swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    if swap:
        swaps += "/dev/zram0                              partition\t1942000\t\t0\t\t100\n"
    write(root, "proc/swaps", swaps)
    write(root, "proc/meminfo", f"MemTotal:       {mem_kb} kB\nMemFree:         100000 kB\n"
                                f"SwapTotal:       {1942000 if swap else 0} kB\n")
    if throttled is not None:
        write(root, "sys/devices/platform/soc/soc:firmware/get_throttled", throttled + "\n")
    return root


def test_data_folder_on_the_sd_card_warns(tmp_path):
    root = pi_tree(tmp_path, data_on_ssd=False)
    storage = hostinfo.storage_for("/var/lib/photobox", root)
    assert storage.disk == "mmcblk0" and storage.kind == "sd card" and storage.mount_point == "/"
    level, detail = hostinfo.storage_check("/var/lib/photobox", root)
    assert level == "WARN" and "SD card" in detail and "SSD" in detail


def test_data_folder_on_a_usb_ssd_is_fine(tmp_path):
    root = pi_tree(tmp_path, data_on_ssd=True)
    storage = hostinfo.storage_for("/var/lib/photobox/library/2024", root)
    assert (storage.disk, storage.kind, storage.rotational, storage.fstype) == ("sda", "usb", False, "ext4")
    level, detail = hostinfo.storage_check("/var/lib/photobox", root)
    assert level == "OK" and "USB disk sda, solid-state" in detail
    # A sibling folder with the same prefix is not on the SSD.
    assert hostinfo.storage_for("/var/lib/photobox-old", root).disk == "mmcblk0"


def test_data_folder_on_nfs_warns(tmp_path):
    root = pi_tree(tmp_path, data_on_ssd=True)
    level, detail = hostinfo.storage_check("/srv/nas/photobox", root)
    assert level == "WARN" and "network filesystem (nfs4)" in detail


def test_emmc_and_spinning_disks(tmp_path):
    add_disk(tmp_path, "devices/platform/emmc2bus/mmc_host/mmc0/mmc0:0001/block/mmcblk0", "mmcblk0", 179,
             mmc_type="MMC")
    add_disk(tmp_path, USB_DEVPATH, "sda", 8, partitions=1, rotational="1")
    write(tmp_path, "proc/self/mountinfo", "22 1 179:2 / / rw - ext4 /dev/root rw\n"
                                           "40 22 8:1 / /media/my\\040disk rw - ext4 /dev/sda1 rw\n")
    assert hostinfo.storage_for("/var/lib/photobox", tmp_path).kind == "emmc"
    level, detail = hostinfo.storage_check("/media/my disk/photos", tmp_path)
    assert level == "OK" and "spinning (HDD)" in detail and "/media/my disk" in detail


def test_unknown_storage_is_not_an_error(tmp_path):
    assert hostinfo.storage_for("/x", tmp_path) is None
    assert hostinfo.storage_check("/x", tmp_path)[0] == "OK"
    write(tmp_path, "proc/self/mountinfo", "1 0 0:30 / / rw - overlay overlay rw\n")
    assert hostinfo.storage_for("/x", tmp_path).kind == "virtual"


def test_throttling_flags(tmp_path):
    assert hostinfo.parse_throttled("throttled=0x50005") == 0x50005
    assert hostinfo.parse_throttled("50000\n") == 0x50000
    assert hostinfo.power_check(pi_tree(tmp_path / "ok", data_on_ssd=False)) == \
        ("OK", "no under-voltage or throttling since boot")
    level, detail = hostinfo.power_check(pi_tree(tmp_path / "uv", data_on_ssd=False, throttled="50005"))
    assert level == "WARN" and "under-voltage now" in detail and "power supply" in detail
    level, detail = hostinfo.power_check(pi_tree(tmp_path / "hot", data_on_ssd=False, throttled="80008"))
    assert level == "WARN" and "soft temperature limit" in detail and "heatsink" in detail
    # A PC reports nothing: no line at all rather than a false alarm.
    assert hostinfo.power_check(pi_tree(tmp_path / "pc", data_on_ssd=False, throttled=None)) is None
    hwmon = tmp_path / "pc/sys/class/hwmon/hwmon1"
    write(hwmon, "name", "rpi_volt\n")
    write(hwmon, "in0_lcrit_alarm", "1\n")
    assert hostinfo.power_check(tmp_path / "pc")[0] == "WARN"


def test_swap(tmp_path):
    level, detail = hostinfo.swap_check(pi_tree(tmp_path / "a", data_on_ssd=False, mem_kb=1_900_000, swap=False))
    assert level == "WARN" and "no swap" in detail and "zram" in detail
    level, detail = hostinfo.swap_check(pi_tree(tmp_path / "b", data_on_ssd=False, mem_kb=1_900_000, swap=True))
    assert level == "OK" and "/dev/zram0" in detail
    assert hostinfo.swap_check(pi_tree(tmp_path / "c", data_on_ssd=False, mem_kb=8_000_000, swap=False))[0] == "OK"


def test_cpu_features(tmp_path):
    root = pi_tree(tmp_path, data_on_ssd=False)
    assert hostinfo.cpu_features(root) >= {"asimd", "crc32"}
    level, detail = hostinfo.cpu_check(root, "aarch64")
    assert level == "OK" and "without dot-product" in detail
    write(root, "proc/cpuinfo", PI5_FEATURES)
    assert "asimddp" in hostinfo.cpu_check(root, "aarch64")[1]
    write(root, "proc/cpuinfo", "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2\n")
    assert hostinfo.cpu_check(root, "x86_64")[0] == "WARN"
    write(root, "proc/cpuinfo", "flags\t\t: fpu sse2 avx avx2 fma\n")
    assert hostinfo.cpu_check(root, "x86_64") == (
        "OK", "x86_64: AVX2 without VNNI: int8 models run, with uint8 weights (onnxruntime's int8-weight kernel "
              "saturates on such CPUs)")
    assert hostinfo.cpu_check(root, "armv7l")[0] == "WARN"


def test_board_model(tmp_path):
    assert hostinfo.board_model(pi_tree(tmp_path, data_on_ssd=False)) == "Raspberry Pi 4 Model B Rev 1.5"
    assert hostinfo.board_model(tmp_path / "nothing") is None


def test_doctor_reports_pi_specifics(tmp_path, settings):
    root = pi_tree(tmp_path / "host", data_on_ssd=False, mem_kb=1_900_000, swap=False, throttled="50005")
    out = io.StringIO()
    assert run_checks(settings, out, host_root=root, machine="aarch64") == 0  # warnings, not failures
    text = out.getvalue()
    assert "OK    board: Raspberry Pi 4 Model B Rev 1.5" in text
    assert "WARN  storage: the data folder is on the SD card mmcblk0" in text
    assert "WARN  power: flags 0x50005" in text
    assert "WARN  memory:" in text and "no swap" in text
    assert "OK    cpu: aarch64: NEON without dot-product" in text
    assert "free space" in text  # the existing checks still run

    healthy = pi_tree(tmp_path / "host2", data_on_ssd=True)
    out = io.StringIO()
    run_checks(settings, out, host_root=healthy, machine="aarch64")
    # settings.data_dir is a tmp folder, which the fake Pi tree puts on its root (SD) filesystem.
    assert "WARN  power" not in out.getvalue() and "OK    power:" in out.getvalue()
