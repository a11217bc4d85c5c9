# cli_lib.sh — what the CLI test scripts share, sourced by each: the
# counters and the two checks.  Each script prints its own summary line.
passed=0 failed=0

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
