# cli_lib.sh — what the CLI test scripts share, sourced by each: the
# counters and the two checks.  Each script prints its own summary line.
passed=0 failed=0

# Whether FUSE mounts can be made here.
fuse_usable() {
  [ -c /dev/fuse ] && ( exec 3<>/dev/fuse ) 2>/dev/null &&
    command -v fusermount3 >/dev/null
}

# mount_vol VOL: "$daemon" -f with key source $mount_key on $tmp/mnt, in
# the background ($dpid); waits for the mount.  umount_vol: its end.
mount_vol() {
  local i
  "$daemon" -f --key "$mount_key" "$1" "$tmp/mnt" 2>>"$tmp/daemon.log" &
  dpid=$!
  for ((i = 0; i < 200; i++)); do
    mountpoint -q "$tmp/mnt" && return 0
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.05
  done
  echo "FAIL: mount of $1"; cat "$tmp/daemon.log"; return 1
}
umount_vol() { fusermount3 -u "$tmp/mnt"; wait "$dpid"; dpid=; }

# rmtree DIR...: removes what a test made, sealed log segments too (the
# daemon makes them immutable where it may, which rm -rf cannot undo).
rmtree() {
  chattr -R -i -a "$@" 2>/dev/null
  chmod -R u+w "$@" 2>/dev/null
  rm -rf "$@"
}

# expect NAME CODE PATTERN -- CMD...: exit code, and stderr one line (or
# none) matching.
expect() {
  local name=$1 code=$2 pat=$3
  shift 4
  local err rc
  err=$("$@" 2>&1 >/dev/null </dev/null); rc=$?
  if [ "$rc" -eq "$code" ] && grep -Eq -- "$pat" <<<"$err" &&
     [ "$(printf '%s' "$err" | wc -l)" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name: exit $rc (want $code), stderr: $err"
  fi
}
check() {	# NAME CMD...: the command succeeds
  local name=$1
  shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1));
  else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
