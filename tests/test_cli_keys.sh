#!/usr/bin/env bash
# test_cli_keys.sh — the `phifsctl key` commands as an admin meets them:
# slots added and removed, versions listed, rotated (and killed half-way,
# then finished), retired, files rekeyed (named or all, killed half-way,
# then finished); a bad key source changes nothing.  The parts that
# need files in the volume mount it, and run only where FUSE can be used.
# Usage: test_cli_keys.sh BUILD_DIR
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
ks_sum() { sha256sum "$1/.phifs/keystore" | cut -d' ' -f1; }

"$ctl" keygen "$tmp/k1" >/dev/null && "$ctl" keygen "$tmp/k2" >/dev/null &&
  "$ctl" keygen "$tmp/k3" >/dev/null && "$ctl" keygen "$tmp/wrong" >/dev/null
mkdir "$tmp/vol"
"$ctl" init --key "file:$tmp/k1" "$tmp/vol" >/dev/null
k1="file:$tmp/k1" k2="file:$tmp/k2"

check "list --json is the SPEC's shape" test "$("$ctl" key list --json --key "$k1" "$tmp/vol")" = \
  '{"versions": [{"version": 1, "state": "active", "files": 0}], "slots": [{"slot": 0, "kind": "file"}]}'
expect "key without a subcommand names them" 2 "list, add-slot, remove-slot, rotate, rekey, retire" -- "$ctl" key
expect "add-slot needs --new-key" 2 "add-slot: --new-key SRC is required" -- "$ctl" key add-slot --key "$k1" "$tmp/vol"
expect "retire needs a VERSION" 2 "retire: expected BACKING VERSION" -- "$ctl" key retire --key "$k1" "$tmp/vol"
expect "rotate takes no --force" 2 "key rotate: unknown option '--force'" -- "$ctl" key rotate --force --key "$k1" "$tmp/vol"
expect "remove-slot of a bad number" 2 "bad SLOT 'x'" -- "$ctl" key remove-slot --key "$k1" "$tmp/vol" x

# Slots.
expect "add-slot" 0 "" -- "$ctl" key add-slot --key "$k1" --new-key "$k2" "$tmp/vol"
check "the new slot unlocks" sh -c "'$ctl' key list --key '$k2' '$tmp/vol' | grep -Eq '^1 +file'"
err=$(printf 'short one\n' | "$ctl" key add-slot --key "$k1" --new-key passphrase "$tmp/vol" 2>&1 >/dev/null); rc=$?
if [ $rc -eq 1 ] && grep -q "new passphrase refused: shorter than 12" <<<"$err"; then passed=$((passed + 1))
else failed=$((failed + 1)); echo "FAIL: a short passphrase is refused: $rc $err"; fi
err=$(printf 'password1234\n' | "$ctl" key add-slot --key "$k1" --new-key passphrase "$tmp/vol" 2>&1 >/dev/null); rc=$?
if [ $rc -eq 1 ] && grep -q "most common" <<<"$err"; then passed=$((passed + 1))
else failed=$((failed + 1)); echo "FAIL: a common passphrase is refused: $rc $err"; fi
check "a good passphrase slot" sh -c "printf 'a tolerable break-glass line\n' | '$ctl' key add-slot --key '$k1' --new-key passphrase '$tmp/vol' | grep -q 'added key slot 2 (passphrase)'"
check "and it unlocks" sh -c "printf 'a tolerable break-glass line\n' | '$ctl' key list --key passphrase '$tmp/vol' | grep -Eq '^2 +passphrase'"
expect "the unlocking slot is kept without --force" 1 "slot 0 is the one --key opens.*--force" -- "$ctl" key remove-slot --key "$k1" "$tmp/vol" 0
expect "an unknown slot" 1 "no key slot 9" -- "$ctl" key remove-slot --key "$k1" "$tmp/vol" 9
expect "remove-slot by another key" 0 "" -- "$ctl" key remove-slot --key "$k2" "$tmp/vol" 0
expect "a removed slot's key no longer unlocks" 1 "wrong key" -- "$ctl" key list --key "$k1" "$tmp/vol"
expect "remove-slot --force of its own slot" 0 "" -- "$ctl" key remove-slot --force --key "$k2" "$tmp/vol" 1
expect "so k2 is out too" 1 "wrong key" -- "$ctl" key list --key "$k2" "$tmp/vol"
check "the passphrase slot is the last one" sh -c "printf 'a tolerable break-glass line\n' | '$ctl' key add-slot --key passphrase --new-key '$k1' '$tmp/vol'"
expect "remove-slot 2 by k1" 0 "" -- "$ctl" key remove-slot --key "$k1" "$tmp/vol" 2
expect "the last slot stays, even with --force" 1 "slot 3 is the last key slot" -- "$ctl" key remove-slot --force --key "$k1" "$tmp/vol" 3

# Retire refusals that need no file.
expect "retire the active version" 1 "version 1 is the active one" -- "$ctl" key retire --key "$k1" "$tmp/vol" 1
expect "retire an unknown version" 1 "no master key version 7" -- "$ctl" key retire --key "$k1" "$tmp/vol" 7

# A bad key source: one line, exit 1, the keystore as it was.
cp "$tmp/k1" "$tmp/loose"; chmod 0644 "$tmp/loose"
printf '%s\n' "#!/bin/sh" "head -c 1048576 /dev/zero" > "$tmp/chatty"; chmod 0755 "$tmp/chatty"
before=$(ks_sum "$tmp/vol")
for sub in "list" "add-slot --new-key file:$tmp/k3" "remove-slot" "rotate" "rekey" "retire"; do
  set -- $sub
  case $1 in remove-slot | retire) tail=1 ;; *) tail= ;; esac
  for src in "file:$tmp/wrong" "cmd:false" "cmd:$tmp/chatty" "file:$tmp/loose"; do
    expect "$1 with $src" 1 "." -- "$ctl" key "$@" --key "$src" "$tmp/vol" $tail
  done
  expect "$1 with a hanging key command" 1 "no key after 1 s" -- timeout 20 "$ctl" key "$@" --key-timeout 1 --key "cmd:sleep 60" "$tmp/vol" $tail
done
for src in "cmd:false" "cmd:$tmp/chatty" "file:$tmp/loose" "file:$tmp/nowhere"; do
  expect "add-slot of a bad new key $src" 1 "--new-key" -- "$ctl" key add-slot --key "$k1" --new-key "$src" "$tmp/vol"
done
check "none of them changed the keystore" test "$(ks_sum "$tmp/vol")" = "$before"
check "nor left a rotation begun" test ! -e "$tmp/vol/.phifs/rotation"
check "nor a rekey" test ! -e "$tmp/vol/.phifs/rekey"

# Rekey paths that are not the volume's: one line, nothing begun.
expect "rekey needs BACKING" 2 "key rekey: expected BACKING \\[PATH\.\.\.\]" -- "$ctl" key rekey --key "$k1"
for p in ../x /etc/passwd .phifs/keystore "$tmp/k1" "$tmp/vol/../k1"; do
  expect "rekey of $p is refused" 1 "$p: outside the volume" -- "$ctl" key rekey --key "$k1" "$tmp/vol" "$p"
done
expect "rekey of a missing path" 1 "nope: No such file" -- "$ctl" key rekey --key "$k1" "$tmp/vol" nope
check "none of them left a rekey begun" test ! -e "$tmp/vol/.phifs/rekey"

if ! fuse_usable; then
  echo "cli_keys: no usable /dev/fuse: the rotation checks, which need files, did not run"
  echo "cli_keys: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]; exit
fi

mount_key=$k1
# verify VOL: every file reads back as it was written.
verify() {
  mount_vol "$1" || return 1
  (cd "$tmp/mnt" && sha256sum --quiet -c "$tmp/sums") >/dev/null 2>&1; local rc=$?
  umount_vol
  return $rc
}
one_active() {	# VOL: one version active, none decrypt-only
  local out
  out=$("$ctl" key list --key "$k1" "$1")
  [ "$(grep -Ec '^[0-9]+ +active' <<<"$out")" -eq 1 ] && ! grep -q decrypt-only <<<"$out"
}

mkdir "$tmp/mnt"
mount_vol "$tmp/vol" || exit 1
(
  cd "$tmp/mnt" && mkdir -p d/e && : > empty && printf x > one &&
  head -c 4096 /dev/urandom > page && head -c 1048577 /dev/urandom > d/big &&
  truncate -s 10M d/e/sparse && printf tail >> d/e/sparse &&
  ln d/big d/e/link && ln -s one sym &&
  for i in $(seq 1 40); do printf 'file %s\n' "$i" > "d/f$i"; done
) || echo "FAIL: filling the volume"
(cd "$tmp/mnt" && find . -type f -print0 | xargs -0 sha256sum) > "$tmp/sums"
nfiles=45	# the hard link counts once, the symlink not at all
# Mounted, the daemon rotates (tests/mount/test_mount_rotate.c); whoever
# asks must still hold a key that opens the volume.
expect "rotate on a mounted volume needs the key" 1 "wrong key" -- "$ctl" key rotate --key "file:$tmp/wrong" "$tmp/vol"
expect "retire on a mounted volume too" 1 "unmount it first" -- "$ctl" key retire --key "$k1" "$tmp/vol" 1
expect "rekey on a mounted volume is refused" 1 "already mounted .*rekey works on an unmounted volume only .*unmount it first" -- "$ctl" key rekey --key "$k1" "$tmp/vol"
umount_vol

check "list counts every file once" sh -c "'$ctl' key list --key '$k1' '$tmp/vol' | grep -Eq '^1 +active +$nfiles\$'"
cp -a "$tmp/vol" "$tmp/old"
out=$("$ctl" key rotate --key "$k1" "$tmp/vol" 2>&1); rc=$?
check "rotate" test $rc -eq 0
check "its summary" grep -q "rotated to master key v2: $nfiles file(s) re-wrapped, 0 already on it, .*retired v1" <<<"$out"
check "every file on v2, v1 retired" test "$("$ctl" key list --json --key "$k1" "$tmp/vol")" = \
  "{\"versions\": [{\"version\": 1, \"state\": \"retired\", \"files\": 0}, {\"version\": 2, \"state\": \"active\", \"files\": $nfiles}], \"slots\": [{\"slot\": 3, \"kind\": \"file\"}]}"
check "the old KEK is gone from the keystore" test "$(ks_sum "$tmp/vol")" != "$(ks_sum "$tmp/old")"
check "files read back after the rotation" verify "$tmp/vol"
# The old keystore and its key source against the rotated files.
rmtree "$tmp/stale"; cp -a "$tmp/vol" "$tmp/stale"
cp "$tmp/old/.phifs/keystore" "$tmp/stale/.phifs/keystore"
check "the old keystore copy opens no rotated file" sh -c "'$ctl' key list --key '$k1' '$tmp/stale' | grep -q 'unreadable headers: $nfiles '"
if mount_vol "$tmp/stale"; then
  opened=0
  while IFS= read -r -d '' f; do
    cat "$tmp/mnt/$f" >/dev/null 2>&1 && opened=$((opened + 1))
  done < <(cd "$tmp/mnt" && find . -type f -print0)
  umount_vol
  check "nor reads any through a mount" test "$opened" -eq 0
fi
json=$("$ctl" key rotate --json --key "$k1" "$tmp/vol")
check "rotate --json" grep -Eq '^\{"version": 3, "resumed": false, "rewrapped": 45, "skipped": 0, "failed": 0, "retired": \[2\], "seconds": [0-9.]+\}$' <<<"$json"

# Killed at several points, then run again.
for at in 0 1 17 $nfiles retire; do
  PHIFS_TEST_ROTATE_KILL=$at "$ctl" key rotate --key "$k1" "$tmp/vol" >/dev/null 2>&1; rc=$?
  check "rotate killed at $at" test $rc -eq 137
  check "fsck passes after a kill at $at" "$ctl" fsck --key "$k1" "$tmp/vol"
  check "every file reads after a kill at $at" verify "$tmp/vol"
  if [ "$at" = 1 ]; then
    old=$("$ctl" key list --key "$k1" "$tmp/vol" | awk '$2 == "decrypt-only" { v = $1 } END { print v }')
    expect "retire refused while files use v$old" 1 "version $old still wraps [0-9]+ file\\(s\\)" -- "$ctl" key retire --key "$k1" "$tmp/vol" "$old"
  fi
  json=$("$ctl" key rotate --json --key "$k1" "$tmp/vol")
  check "the rerun after a kill at $at resumes ($json)" grep -q '"resumed": true, .*"failed": 0' <<<"$json"
  check "and leaves one active version" one_active "$tmp/vol"
done 2>/dev/null	# bash's "Killed" notes
check "every file reads after the kills" verify "$tmp/vol"

# --keep-old, then retire.
out=$("$ctl" key rotate --keep-old --key "$k1" "$tmp/vol")
check "rotate --keep-old keeps the old one" grep -q "older versions kept decrypt-only" <<<"$out"
old=$("$ctl" key list --key "$k1" "$tmp/vol" | awk '$2 == "decrypt-only" { print $1 }')
check "a decrypt-only version with no file" sh -c "'$ctl' key list --key '$k1' '$tmp/vol' | grep -Eq '^$old +decrypt-only +0\$'"
expect "retire it" 0 "" -- "$ctl" key retire --key "$k1" "$tmp/vol" "$old"
expect "retire it twice" 1 "already retired" -- "$ctl" key retire --key "$k1" "$tmp/vol" "$old"

# A header that cannot be read: counted, and nothing retired past it.
"$ctl" key rotate --keep-old --key "$k1" "$tmp/vol" >/dev/null
old=$("$ctl" key list --key "$k1" "$tmp/vol" | awk '$2 == "decrypt-only" { print $1 }')
printf 'not a phifs file' > "$tmp/vol/d/junk"
check "list counts an unreadable header" sh -c "'$ctl' key list --key '$k1' '$tmp/vol' | grep -q '^unreadable headers: 1 (first: d/junk: '"
check "and says so in JSON" sh -c "'$ctl' key list --json --key '$k1' '$tmp/vol' | grep -q '\"unreadable\": 1}\$'"
expect "retire refused past it" 1 "1 header\\(s\\) cannot be read \\(first: d/junk: .*may still be in use" -- "$ctl" key retire --key "$k1" "$tmp/vol" "$old"
expect "rotate stops short of retiring" 1 "1 file\\(s\\) not re-wrapped \\(first: d/junk: .*stay decrypt-only" -- "$ctl" key rotate --key "$k1" "$tmp/vol"
check "so the old one is still decrypt-only" sh -c "'$ctl' key list --key '$k1' '$tmp/vol' | grep -Eq '^$old +decrypt-only'"
rm "$tmp/vol/d/junk"
check "once fixed, a rerun finishes" sh -c "'$ctl' key rotate --key '$k1' '$tmp/vol' | grep -q '^finished rotating'"
check "with one active version" one_active "$tmp/vol"
check "and every file reads" verify "$tmp/vol"

# Rekey.  gens VOL: "path generation" of every encrypted file (the DEK
# generation, bytes 56..59 of header slot 0).
gens() {
  (cd "$1" && find . -path ./.phifs -prune -o -type f ! -perm -1000 -print | sort |
    while IFS= read -r f; do printf '%s %s\n' "$f" "$(od -An -tu4 -j56 -N4 "$f" | tr -d ' ')"; done)
}
# went_up BEFORE AFTER N: N files' generations went up by exactly one, the
# others' stayed.
went_up() {
  [ "$(join "$1" "$2" | awk '$3 == $2 + 1' | wc -l)" -eq "$3" ] &&
    [ "$(join "$1" "$2" | awk '$3 != $2 && $3 != $2 + 1' | wc -l)" -eq 0 ]
}
has_xattrs=0
mount_vol "$tmp/vol" && {
  if python3 -c "import os; os.setxattr('$tmp/mnt/page', 'user.color', b'blue')" 2>/dev/null; then
    has_xattrs=1
  fi
  chmod 0640 "$tmp/mnt/one"; touch -m -d '2001-02-03 04:05:06' "$tmp/mnt/page"
  head -c 300000 /dev/urandom > "$tmp/mnt/multi"	# 74 blocks, dense
  (cd "$tmp/mnt" && sha256sum ./multi) >> "$tmp/sums"
  meta_before=$(cd "$tmp/mnt" && stat -c '%n %a %u %Y %s' one page empty d/e/sparse)
  umount_vol
}
gens "$tmp/vol" > "$tmp/g0"
sparse_kb=$(du -k "$tmp/vol/d/e/sparse" | cut -f1)
out=$("$ctl" key rekey --key "$k1" "$tmp/vol" one empty "$tmp/vol/d/e/sparse" page multi 2>&1); rc=$?
check "rekey of named paths ($out)" test $rc -eq 0
check "its summary" grep -q "^rekeyed 5 file(s) (10.3 MiB) under fresh keys, 0 hard-linked left" <<<"$out"
gens "$tmp/vol" > "$tmp/g1"
check "the five named went up one generation, no other" went_up "$tmp/g0" "$tmp/g1" 5
check "the sparse file kept its holes" test "$(du -k "$tmp/vol/d/e/sparse" | cut -f1)" -le $((sparse_kb + 8))
check "no marker is left" test ! -e "$tmp/vol/.phifs/rekey"
check "files read back after a rekey of paths" verify "$tmp/vol"
mount_vol "$tmp/vol" && {
  check "mode, owner, mtime and size kept" test "$(cd "$tmp/mnt" && stat -c '%n %a %u %Y %s' one page empty d/e/sparse)" = "$meta_before"
  if [ $has_xattrs = 1 ]; then
    check "a user xattr kept" test "$(python3 -c "import os; print(os.getxattr('$tmp/mnt/page', 'user.color').decode())")" = blue
  fi
  umount_vol
}
expect "a hard-linked path is refused" 1 "1 hard-linked file\\(s\\) not rekeyed \\(first: d/e/link, 2 links\\)" -- "$ctl" key rekey --key "$k1" "$tmp/vol" d/e/link
expect "a symlink is not a file to rekey" 1 "sym: not an encrypted file" -- "$ctl" key rekey --key "$k1" "$tmp/vol" sym
json=$("$ctl" key rekey --json --key "$k1" "$tmp/vol" 2>"$tmp/err"); rc=$?
check "rekey of all --json ($json)" grep -Eq '^\{"resumed": false, "rekeyed": 45, "skipped": 0, "refused": 1, "failed": 0, "bytes": [0-9]+, "strays": 0, "seconds": [0-9.]+\}$' <<<"$json"
check "exits 1 for the hard link, one line" sh -c "[ $rc -eq 1 ] && [ \$(wc -l < '$tmp/err') -eq 1 ] && grep -q 'hard-linked file(s) not rekeyed .*copy the file to break it' '$tmp/err'"
gens "$tmp/vol" > "$tmp/g2"
check "every file but the linked one went up one" went_up "$tmp/g1" "$tmp/g2" 45
check "files read back after a rekey of all" verify "$tmp/vol"

# Killed at several points, then run again: each file up exactly one.
for at in 0 1:copied 7:logged 20 44:copied; do
  cp "$tmp/g2" "$tmp/gk"
  PHIFS_TEST_REKEY_KILL=$at "$ctl" key rekey --key "$k1" "$tmp/vol" >/dev/null 2>&1; rc=$?
  check "rekey killed at $at" test $rc -eq 137
  check "fsck passes after a kill at $at" "$ctl" fsck --key "$k1" "$tmp/vol"
  check "every file reads after a kill at $at" verify "$tmp/vol"
  case $at in *:*)
    check "a copy was left beside its file at $at" test -n "$(find "$tmp/vol" -name '.phifs-rekey-*')"
    mount_vol "$tmp/vol" && {
      check "and the mount does not show it" test -z "$(cd "$tmp/mnt" && find . -name '.phifs-rekey-*')"
      umount_vol
    } ;;
  esac
  json=$("$ctl" key rekey --json --key "$k1" "$tmp/vol" 2>/dev/null)
  check "the rerun after a kill at $at resumes ($json)" grep -q '^{"resumed": true, .*"refused": 1, "failed": 0' <<<"$json"
  check "and removed the copy" test -z "$(find "$tmp/vol" -name '.phifs-rekey-*')"
  gens "$tmp/vol" > "$tmp/g2"
  check "each file went up one across the kill at $at" went_up "$tmp/gk" "$tmp/g2" 45
done 2>/dev/null	# bash's "Killed" notes
check "every file reads after the rekey kills" verify "$tmp/vol"

echo "cli_keys: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
