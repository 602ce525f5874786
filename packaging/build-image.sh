#!/usr/bin/env bash
# Build an arm64 Debian bookworm root filesystem with photobox preinstalled, then (optionally)
# a bootable Raspberry Pi 4 / 400 / CM4 SD-card image from it.
#
#   sudo packaging/build-image.sh [--out DIR] [--stages "rootfs configure venv finish img"]
#
# Runs on any x86_64 or arm64 Debian/Ubuntu host with: debootstrap qemu-user-static binfmt-support
# fdisk dosfstools e2fsprogs (apt-get install them). On x86_64 the arm64 binaries run through
# qemu-user-static via binfmt_misc (the "F" flag, so nothing is copied into the image).
#
# Reproducibility: the Debian mirror can be a pinned snapshot (MIRROR=http://snapshot.debian.org/
# archive/debian/20250520T000000Z), SOURCE_DATE_EPOCH defaults to the last commit's time, the
# Python dependencies are downloaded once as aarch64 wheels into a wheelhouse (no compiling) and
# installed offline, every file's mtime is clamped to SOURCE_DATE_EPOCH, and per-machine state
# (machine-id, SSH host keys, logs, caches) is removed. MANIFEST.txt records every Debian package
# version and every wheel's sha256, so two builds can be compared.
#
# Each stage leaves a stamp in $OUT, so a failed build resumes where it stopped; --stages picks some.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_REPO="$(cd "$HERE/.." && pwd)"
OUT="${OUT:-/var/tmp/photobox-image}"   # outside the repository
STAGES="rootfs configure venv finish"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
IMG_SIZE_MB="${IMG_SIZE_MB:-3072}"
PY_VERSION="${PY_VERSION:-3.11}"   # bookworm's python3
UPGRADE="${UPGRADE:-1}"            # 0: skip apt-get upgrade at build time (unattended-upgrades does it on the box)

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --stages) STAGES="$2"; shift 2 ;;
    --img) STAGES="$STAGES img"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT_REPO" log -1 --format=%ct 2>/dev/null || date +%s)}"
export LC_ALL=C.UTF-8 TZ=UTC DEBIAN_FRONTEND=noninteractive
ROOTFS="$OUT/rootfs"
WHEELS="$OUT/wheelhouse"
mkdir -p "$OUT"

log() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
stamp() { touch "$OUT/.done-$1"; }
done_already() { [ -f "$OUT/.done-$1" ]; }
want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"; }

need_arm64_exec() {
  [ "$(uname -m)" = aarch64 ] && return 0
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
  fi
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
    echo "qemu-aarch64 binfmt handler lacks the F flag; install qemu-user-static (Debian's has it)" >&2; exit 1; }
}

MOUNTED=()
mount_api() {
  for fs in proc sys dev dev/pts; do
    mountpoint -q "$ROOTFS/$fs" && continue
    case "$fs" in
      proc) mount -t proc proc "$ROOTFS/proc" ;;
      sys) mount -t sysfs sys "$ROOTFS/sys" ;;
      dev) mount --bind /dev "$ROOTFS/dev" ;;
      dev/pts) mount -t devpts devpts "$ROOTFS/dev/pts" ;;
    esac
    MOUNTED=("$ROOTFS/$fs" "${MOUNTED[@]}")
  done
}
cleanup() { for m in "${MOUNTED[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT

# Debian packages of the image. raspi-firmware + linux-image-arm64 are Debian's own Raspberry Pi
# boot path (the same as raspi.debian.net images): Pi 3/4/400/CM4. Pi 5 needs a newer kernel.
PACKAGES=(
  systemd-sysv udev dbus kmod iproute2 ifupdown isc-dhcp-client iputils-ping netbase ca-certificates
  openssh-server sudo less nano locales tzdata
  python3 python3-venv
  avahi-daemon libnss-mdns
  unattended-upgrades apt-listchanges
  e2fsprogs dosfstools fdisk parted util-linux cloud-guest-utils
  linux-image-arm64 raspi-firmware firmware-brcm80211 wpasupplicant
)

stage_rootfs() {
  need_arm64_exec
  log "debootstrap $SUITE arm64 from $MIRROR into $ROOTFS"
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  debootstrap --arch=arm64 --variant=minbase --components=main,non-free-firmware \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" "$SUITE" "$ROOTFS" "$MIRROR"
}

stage_configure() {
  need_arm64_exec
  mount_api
  log "apt sources, security updates"
  cat > "$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main non-free-firmware
deb $MIRROR $SUITE-updates main non-free-firmware
deb $SECURITY_MIRROR $SUITE-security main non-free-firmware
SRC
  in_root apt-get update -q
  if [ "$UPGRADE" = 1 ]; then
    # update-initramfs -u (the trigger) would rebuild the same initramfs after each package: under
    # qemu that is half an hour each. A new kernel still gets its own (-c) from its postinst.
    local conf="$ROOTFS/etc/initramfs-tools/update-initramfs.conf"
    sed -i 's/^update_initramfs=.*/update_initramfs=no/' "$conf"
    in_root apt-get -y -q upgrade
    sed -i 's/^update_initramfs=.*/update_initramfs=yes/' "$conf"
  fi
  log "copy packaging/rootfs (first boot, status page, avahi, unattended-upgrades, fstab)"
  cp -a "$HERE/rootfs/." "$ROOTFS/"
  { printf 'LABEL=PHOTOBOX-ROOT / ext4 defaults,noatime 0 1\n'
    printf 'LABEL=RASPIFIRM /boot/firmware vfat defaults,umask=0077 0 2\n'
    cat "$HERE/rootfs/etc/fstab"; } > "$ROOTFS/etc/fstab"
  log "user pi (locked: first boot enables SSH with a key only when photobox.txt gives one), locale, units"
  in_root sh -c 'id -u pi >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo pi'
  in_root passwd -l pi >/dev/null
  echo 'pi ALL=(ALL) NOPASSWD:ALL' > "$ROOTFS/etc/sudoers.d/010_pi-nopasswd"; chmod 0440 "$ROOTFS/etc/sudoers.d/010_pi-nopasswd"
  echo "C.UTF-8 UTF-8" > "$ROOTFS/etc/locale.gen"
  in_root systemctl enable photobox-firstboot.service photobox-status.service photobox-models.service \
    avahi-daemon.service
  in_root systemctl disable ssh.service 2>/dev/null || true   # enabled by first boot on request
  log "boot partition contents (raspi-firmware): root by label, HDMI + serial console"
  # Inside a chroot the hook would guess the root device from the build host's mounts: name it.
  grep -q '^ROOTPART=' "$ROOTFS/etc/default/raspi-firmware" ||
    printf '\n# photobox image\nROOTPART=LABEL=PHOTOBOX-ROOT\nCONSOLES="tty0 ttyS1,115200"\n' >> "$ROOTFS/etc/default/raspi-firmware"
  in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
  cat "$ROOTFS/boot/firmware/cmdline.txt"
}

stage_venv() {
  need_arm64_exec
  mount_api
  log "wheelhouse: aarch64 cp${PY_VERSION/./} wheels for photobox's dependencies (binary only)"
  rm -rf "$WHEELS"; mkdir -p "$WHEELS"
  local pip=(python3 -m pip)
  [ -x /work/venv/bin/python ] && pip=(/work/venv/bin/python -m pip)
  (cd "$ROOT_REPO" && "${pip[@]}" wheel --no-deps -w "$WHEELS" . -q)
  # Every manylinux level bookworm's glibc (2.36) runs: pip matches --platform tags exactly.
  local plats=(--platform manylinux2014_aarch64 --platform linux_aarch64) v
  for v in $(seq 17 36); do plats+=(--platform "manylinux_2_${v}_aarch64"); done
  "${pip[@]}" download -q -d "$WHEELS" --only-binary=:all: "${plats[@]}" \
    --python-version "$PY_VERSION" --implementation cp --abi "cp${PY_VERSION/./}" --abi abi3 --abi none \
    "$WHEELS"/photobox-*.whl
  log "scripts/install --root: user, /opt/photobox/venv (offline, from the wheelhouse), unit, CLI, avahi"
  rm -rf "$ROOTFS/opt/photobox/wheels"; mkdir -p "$ROOTFS/opt/photobox/wheels"
  cp "$WHEELS"/*.whl "$ROOTFS/opt/photobox/wheels/"
  local wheel; wheel="$(cd "$WHEELS" && ls photobox-*.whl)"
  "$ROOT_REPO/scripts/install" --root "$ROOTFS" --port 80 --no-start \
    --from "/opt/photobox/wheels/$wheel" --pip-args "--no-index --find-links /opt/photobox/wheels --no-compile"
  # Byte-compile once, deterministically (pyc keyed by hash, not mtime).
  in_root /opt/photobox/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash \
    /opt/photobox/venv/lib >/dev/null || true
  rm -rf "$ROOTFS/opt/photobox/wheels"
  log "check: photobox --version inside the arm64 rootfs"
  in_root /opt/photobox/venv/bin/photobox --version | tee "$OUT/photobox-version.txt"
  log "check: photobox doctor inside the arm64 rootfs (no data yet)"
  in_root env PHOTOBOX_DATA_DIR=/var/lib/photobox /opt/photobox/venv/bin/photobox doctor | tee "$OUT/doctor.txt" || true
}

stage_finish() {
  need_arm64_exec
  mount_api
  log "verify units, manifest, strip per-machine state, clamp mtimes"
  in_root systemd-analyze verify /etc/systemd/system/photobox.service \
    /etc/systemd/system/photobox-firstboot.service /etc/systemd/system/photobox-status.service \
    /etc/systemd/system/photobox-models.service 2>&1 | tee "$OUT/verify.txt"
  in_root apt-get clean
  {
    echo "# photobox image manifest  SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH  suite=$SUITE  mirror=$MIRROR"
    echo "# photobox $(cat "$OUT/photobox-version.txt" 2>/dev/null)  git $(git -C "$ROOT_REPO" rev-parse HEAD 2>/dev/null)"
    echo "## debian packages"
    in_root dpkg-query -W -f '${Package}=${Version}\n' | sort
    echo "## python wheels (sha256)"
    (cd "$WHEELS" && sha256sum -- *.whl | sort -k2)
  } > "$OUT/MANIFEST.txt"
  cleanup; MOUNTED=()
  rm -f "$ROOTFS/etc/ssh/ssh_host_"* "$ROOTFS/var/lib/dbus/machine-id"
  : > "$ROOTFS/etc/machine-id"     # empty: systemd makes one on first boot (and runs ConditionFirstBoot units)
  rm -rf "$ROOTFS/var/cache/apt/"*.bin "$ROOTFS/var/lib/apt/lists/"* "$ROOTFS/var/log/"*.log \
    "$ROOTFS/var/log/apt/"* "$ROOTFS/tmp/"* "$ROOTFS/root/.cache"
  find "$ROOTFS" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
  du -sh "$ROOTFS" | tee "$OUT/rootfs-size.txt"
  stamp finish
}

# The bootable SD-card image: a FAT boot partition (/boot/firmware: firmware, kernel, initrd, DTBs,
# config.txt, cmdline.txt written by Debian's raspi-firmware hooks) and an ext4 root, labelled
# RASPIFIRM / PHOTOBOX-ROOT. Needs loop devices (losetup -P); mkfs.ext4 -d fills root without mounting.
stage_img() {
  local img="$OUT/photobox-arm64.img" boot_mb=512
  log "image $img (${IMG_SIZE_MB} MiB)"
  rm -f "$img"; truncate -s "${IMG_SIZE_MB}M" "$img"
  sfdisk --quiet "$img" <<PART
label: dos
label-id: 0x70686f74
start=8192, size=$((boot_mb * 2048)), type=c, bootable
start=$((8192 + boot_mb * 2048)), type=83
PART
  # Boot partition contents: whatever raspi-firmware put under /boot/firmware.
  local bootdir="$ROOTFS/boot/firmware"
  grep -q 'root=LABEL=PHOTOBOX-ROOT' "$bootdir/cmdline.txt" || { echo "cmdline.txt does not boot by label" >&2; exit 1; }
  local part_img="$OUT/root.ext4" bootfs="$OUT/boot.vfat"
  # mkfs.ext4 -d copies access times too, and reading the tree moves them: pin them first.
  find "$ROOTFS" -xdev -print0 | xargs -0r touch -h -a -d "@$SOURCE_DATE_EPOCH"
  rm -f "$part_img" "$bootfs"
  truncate -s "$((IMG_SIZE_MB - boot_mb - 4))M" "$part_img"
  # Reproducible ext4: UUID and directory hash seed derived from SOURCE_DATE_EPOCH, inode times clamped.
  local uuid; uuid="$(printf '%08x-0000-4000-8000-%012x' "$SOURCE_DATE_EPOCH" "$SOURCE_DATE_EPOCH")"
  E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" mkfs.ext4 -q -F -L PHOTOBOX-ROOT -U "$uuid" \
    -E "root_owner=0:0,hash_seed=$uuid" -d "$ROOTFS" "$part_img"
  truncate -s "${boot_mb}M" "$bootfs"
  mkfs.vfat -n RASPIFIRM -i 70686f74 --invariant "$bootfs" >/dev/null 2>&1 || mkfs.vfat -n RASPIFIRM -i 70686f74 "$bootfs" >/dev/null
  if command -v mcopy >/dev/null; then
    MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$bootfs" "$bootdir"/* ::/
  else
    echo "mtools missing: apt-get install mtools to fill the boot partition" >&2; exit 1
  fi
  dd if="$bootfs" of="$img" bs=1M seek=4 conv=notrunc status=none
  dd if="$part_img" of="$img" bs=1M seek=$((4 + boot_mb)) conv=notrunc status=none
  rm -f "$part_img" "$bootfs"
  sfdisk -l "$img" | tee "$OUT/img-layout.txt"
  sha256sum "$img" | tee "$img.sha256"
  stamp img
}

start=$(date +%s)
for s in rootfs configure venv finish img; do
  want "$s" || continue
  if done_already "$s" && [ "$s" != finish ] && [ "$s" != img ]; then log "stage $s already done (rm $OUT/.done-$s to redo)"; continue; fi
  t=$(date +%s); "stage_$s"; stamp "$s"; log "stage $s took $(( $(date +%s) - t )) s"
done
log "done in $(( $(date +%s) - start )) s; output in $OUT"
