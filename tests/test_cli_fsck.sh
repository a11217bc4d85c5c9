#!/usr/bin/env bash
# test_cli_fsck.sh — `phifsctl fsck` as an admin meets it: a sound volume
# passes with every object counted; each kind of damage or tampering
# (a flipped block, a file cut short, blocks swapped, a header that no
# longer opens, a planted symlink, an altered node record, a sealed
# attribute copied to another file) fails naming the path and what; what
# a crash or a change behind phifs's back leaves (a chmod of the backing
# file, an unfinished rewrite, a rekey's copy) is a note, and passes.
# Usage: test_cli_fsck.sh BUILD_DIR
set -u
ctl="$1/phifsctl"
daemon="$1/phifs"
tmp=$(mktemp -d)
dpid=
cleanup() {
  if [ -n "$dpid" ]; then fusermount3 -u "$tmp/mnt" 2>/dev/null; wait "$dpid"; fi
  rmtree "$tmp"
}
trap cleanup EXIT
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"
# says CODE PATTERN: the last fsck ($rc, $out) exited CODE with a line
# matching; counts CODE N PATTERN: with N lines matching (grep -E).
says() { [ "$rc" -eq "$1" ] && grep -q -- "$2" <<<"$out"; }
counts() { [ "$rc" -eq "$1" ] && [ "$(grep -Ec -- "$3" <<<"$out")" -eq "$2" ]; }

"$ctl" keygen "$tmp/k" >/dev/null && "$ctl" keygen "$tmp/wrong" >/dev/null
mkdir "$tmp/vol" "$tmp/mnt"
"$ctl" init --key "file:$tmp/k" "$tmp/vol" >/dev/null
k="file:$tmp/k"

expect "fsck needs --key" 2 "fsck: --key SRC is required" -- "$ctl" fsck "$tmp/vol"
expect "fsck needs BACKING" 2 "fsck: expected BACKING" -- "$ctl" fsck --key "$k"
expect "fsck takes no --json" 2 "fsck: unknown option '--json'" -- "$ctl" fsck --json --key "$k" "$tmp/vol"
expect "fsck with a wrong key" 1 "wrong key" -- "$ctl" fsck --key "file:$tmp/wrong" "$tmp/vol"
check "an empty volume is sound" "$ctl" fsck --key "$k" "$tmp/vol"

if ! fuse_usable; then
  echo "cli_fsck: no usable /dev/fuse: the checks that need files did not run"
  echo "cli_fsck: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]; exit
fi

mount_key=$k

mount_vol "$tmp/vol" || exit 1
(
  cd "$tmp/mnt" && mkdir -p d/e && : > empty && printf x > one &&
  head -c 100000 /dev/urandom > d/big && head -c 100000 /dev/urandom > d/other &&
  truncate -s 10M d/e/sparse && printf tail >> d/e/sparse &&
  ln d/big d/e/link && ln -s one sym && ln -s "$(printf 'y%.0s' $(seq 3500))" long &&
  mkfifo fifo && mknod dev c 1 3
) || echo "FAIL: filling the volume"
expect "fsck of a mounted volume is refused" 1 "fsck works on an unmounted volume only, unmount it first" -- "$ctl" fsck --key "$k" "$tmp/vol"
umount_vol

out=$("$ctl" fsck --key "$k" "$tmp/vol" 2>&1); rc=$?
check "a sound volume passes ($out)" test $rc -eq 0
check "and everything is counted once" grep -qx "checked 5 file(s) (10.2 MiB), 3 folder(s), 1 symlink(s), 2 node record(s), 1 other(s), 0 extended attribute(s): 0 problem(s), 0 note(s)" <<<"$out"

# A restore file by file renumbers inodes: folder records no longer open,
# and the mount would show every folder as mode 0000.
rmtree "$tmp/c"; cp -a "$tmp/vol" "$tmp/c"
out=$("$ctl" fsck --key "$k" "$tmp/c" 2>&1); rc=$?
check "a file-by-file copy fails on its folder records ($out)" counts 1 3 ': folder record fails authentication'
out=$("$ctl" fsck --adopt-folders --key "$k" "$tmp/c" 2>&1); rc=$?
check "--adopt-folders gives them records of the backing's ($out)" says 0 '^adopted folders: 3 walked, 3 given a record .*(3 had one that did not open)'
check "after which the copy is sound" "$ctl" fsck --key "$k" "$tmp/c"
mount_vol "$tmp/c" || exit 1
check "and mounts with the folders' modes" test "$(stat -c %a "$tmp/mnt/d")" = 755
umount_vol

# damage SCRIPT [VOL]: runs SCRIPT (python) in a copy of the volume, or in
# VOL itself, and fsck on it.  Sealed attributes are bound to their backing
# inode, which a copy changes: those cases run in place, last.
damage() {
  local c=${2:-$tmp/c}
  if [ $# -ne 2 ]; then
    rmtree "$c"; cp -a "$tmp/vol" "$c"
    # A copy renumbers inodes, to which folder records are bound.
    "$ctl" fsck --adopt-folders --key "$k" "$c" 2>&1 | grep -q '^adopted folders: .* 0 failed$' ||
      echo "FAIL: adopting the copy's folders"
  fi
  (cd "$c" && python3 -c "
import os
def flip(p, off):
    with open(p, 'r+b') as f:
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))
def sealed(p):
    return [n for n in os.listxattr(p, follow_symlinks=False) if n.startswith('user.phifs.x.')][0]
$1") || echo "FAIL: damaging the copy: $1"
  out=$("$ctl" fsck --key "$k" "$c" 2>&1); rc=$?
}
blk() { echo $((1024 + $1 * 4124 + 100)); }	# a byte inside stored block N

damage "flip('d/big', $(blk 3))"
check "a flipped block fails ($out)" test $rc -eq 1
check "naming the file and block" grep -Eqx "d/(big|e/link): block 3 fails authentication" <<<"$out"
check "and nothing else" grep -q ": 1 problem(s), 0 note(s)$" <<<"$out"

damage "os.truncate('d/other', 1024 + 10 * 4124)"
check "a file cut short fails ($out)" says 1 '^d/other: block 10 fails authentication'

damage "
a = open('d/other', 'r+b'); a.seek($(blk 1) - 100); x = a.read(4124); a.seek($(blk 2) - 100); y = a.read(4124)
a.seek($(blk 1) - 100); a.write(y); a.seek($(blk 2) - 100); a.write(x); a.close()"
check "swapped blocks fail, both named ($out)" counts 1 2 '^d/other: block [12] fails authentication'

damage "flip('one', 100); flip('one', 612)"
check "a header that no longer opens ($out)" says 1 '^one: header does not open: '

damage "flip('one', 612)"
check "a damaged newest slot is a note ($out)" says 0 '^note: one: header slot 1 refused'

damage "os.unlink('sym'); os.symlink('phifs1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'sym')"
check "a planted symlink fails ($out)" says 1 '^sym: symlink target fails authentication'

damage "flip('long', 40)"
check "an altered node record fails ($out)" says 1 '^long: node record fails authentication'

damage "os.chmod('d/other', 0o666)"
check "a chmod behind phifs's back is a note ($out)" says 0 '^note: d/other: backing mode 0666 .*, the header.s 0644 .*put back'
check "and the mode is put back" test "$(stat -c %a "$tmp/c/d/other")" = 644

damage "
import subprocess
hexid = open('d/other', 'rb').read()[40:56].hex()
open('.phifs/journal/' + hexid, 'wb').close()"
check "an unfinished rewrite is a note ($out)" says 0 '^note: d/other: a rewrite was interrupted'

damage "open('d/.phifs-rekey-00000000000000000000000000000000', 'wb').close()"
check "a rekey's copy is a note ($out)" says 0 '^note: d/.phifs-rekey-.*rerun it to finish'

damage "os.setxattr('d/e', 'user.phifs.dir', os.getxattr('d', 'user.phifs.dir'))"
check "a folder record copied from another folder fails ($out)" says 1 '^d/e: folder record fails authentication'
damage "os.removexattr('d/e', 'user.phifs.dir')"
check "a folder record removed on a marked volume fails ($out)" says 1 '^d/e: folder record missing'
damage "os.chmod('d', 0o777)"
check "a folder chmod behind phifs's back is a note ($out)" says 0 '^note: d: backing mode 0777 .*the record.s 0755'

mount_vol "$tmp/vol" || exit 1
python3 -c "import os; os.setxattr('$tmp/mnt/d/big', 'user.a', b'1'); os.setxattr('$tmp/mnt/d', 'user.b', b'2')" ||
  echo "FAIL: setting attributes"
umount_vol
out=$("$ctl" fsck --key "$k" "$tmp/vol" 2>&1); rc=$?
check "sealed attributes are counted ($out)" says 0 '2 extended attribute(s): 0 problem(s)'
damage "os.setxattr('d/other', sealed('d/big'), os.getxattr('d/big', sealed('d/big')))" "$tmp/vol"
check "a sealed attribute copied to another file fails ($out)" says 1 '^d/other: extended attribute user.phifs.x.[0-9a-f]* fails authentication'

damage "os.setxattr('d', sealed('d'), b'x' * 40)" "$tmp/vol"
check "an altered folder attribute fails ($out)" says 1 '^d: extended attribute'

echo "cli_fsck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
