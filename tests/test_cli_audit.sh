#!/usr/bin/env bash
# test_cli_audit.sh — the `phifsctl audit` commands as an auditor meets
# them, on logs written by the real chain code (audit_gen): verify's exit
# codes (0 intact, 1 fault naming segment and line, 2 usage, 3 unsealed
# tail), anchor, --pubkey pinning, show's filters; pubkey and the
# fingerprint in `key list` on a real volume (no mount needed).
# Every verify also runs tools/audit-verify.py, the independent verifier
# written from docs/AUDIT.md, which must agree on the exit code and the
# place of the fault.
# Usage: test_cli_audit.sh BUILD_DIR
set -u
ctl="$1/phifsctl"
gen="$1/audit_gen"
pyv="$(cd "$(dirname "$0")/.." && pwd)/tools/audit-verify.py"
tmp=$(mktemp -d)
trap '"$gen" unseal "$tmp/writer" 2>/dev/null; chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"
# both NAME CODE PATTERN ARGS...: `phifsctl audit verify ARGS` as expect
# does, and audit-verify.py ARGS with the same exit code and fault place.
both() {
  local name=$1 code=$2 pat=$3 e1 e2 r2
  shift 3
  expect "$name" "$code" "$pat" -- "$ctl" audit verify "$@"
  e1=$("$ctl" audit verify "$@" 2>&1 >/dev/null | grep -o 'seg-[0-9]*\.jsonl line [0-9]*')
  e2=$(python3 "$pyv" "$@" 2>&1 >/dev/null); r2=$?
  e2=$(grep -o 'seg-[0-9]*\.jsonl line [0-9]*' <<<"$e2")
  if [ "$r2" -eq "$code" ] && [ "$e1" = "$e2" ]; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL: $name: audit-verify.py exit $r2 at '$e2', phifsctl at '$e1'"; fi
}
# fresh NAME NSEGS PER_SEG [open]: a new log in $tmp/NAME, key $tmp/k.
fresh() { rm -rf "${tmp:?}/$1"; mkdir "$tmp/$1" && "$gen" "$tmp/$1" "$tmp/k" "${@:2}"; }
seg() { printf '%s/%s/seg-%020d.jsonl' "$tmp" "$1" "$2"; }

"$ctl" keygen "$tmp/k" >/dev/null && "$ctl" keygen "$tmp/k2" >/dev/null
fresh log 4 3
seg3=$(seg log 9) seg4=$(seg log 13)

both "an intact log verifies" 0 "" "$tmp/log"
check "and says how much" sh -c "'$ctl' audit verify '$tmp/log' | grep -q '^intact: 16 records (seq 1..16) in 4 segment(s), 4 checkpoint(s)$'"
expect "audit without a subcommand names them" 2 "verify, anchor, show, pubkey" -- "$ctl" audit
expect "verify needs a DIR" 2 "audit verify: expected one DIR" -- "$ctl" audit verify
both "verify takes no --uid" 2 "audit verify: unknown option '--uid'" --uid 1 "$tmp/log"
both "an empty folder is no log" 1 "audit.pub: No such file" "$tmp"

"$ctl" audit anchor "$tmp/log" >"$tmp/anchor"
check "anchor prints the newest checkpoint line" grep -q '^{"seq":16,.*"op":"checkpoint",.*"sig":"' "$tmp/anchor"
both "verify --anchor of an intact log" 0 "" --anchor "$tmp/anchor" "$tmp/log"

# Tampering, each caught with its place.
cp "$seg3" "$tmp/seg3"
sed -i '2s/"uid":1000/"uid":1001/; 2s/"uid":1002/"uid":1000/; 2s/"uid":1001,"gid"/"uid":1002,"gid"/' "$seg3"
both "one byte changed" 1 "seg-00000000000000000009.jsonl line 2: bad hash" "$tmp/log"
cp "$tmp/seg3" "$seg3"; sed -i '2d' "$seg3"
both "a record deleted" 1 "seg-00000000000000000009.jsonl line 2: gap in sequence: seq 11 where 10 was due" "$tmp/log"
cp "$tmp/seg3" "$seg3"; awk 'NR == 2 { a = $0; next } NR == 3 { print; print a; next } 1' "$tmp/seg3" >"$seg3"
both "two records swapped" 1 "line 2: gap in sequence: seq 11 where 10 was due" "$tmp/log"
cp "$tmp/seg3" "$seg3"; truncate -s -40 "$seg4"
both "the tail cut mid-record" 1 "seg-00000000000000000013.jsonl line 4: truncated segment" "$tmp/log"
fresh log 4 3; rm "$(seg log 5)"
both "a middle segment removed" 1 "seg-00000000000000000009.jsonl line 0: gap in sequence: segment starts at seq 9 where 5 was due" "$tmp/log"
fresh log 4 3; rm "$seg4"
both "the newest segment removed passes alone" 0 "" "$tmp/log"
both "but not with the anchor" 1 "line 0: the log ends at seq 12, before the anchored seq 16: its tail was cut" --anchor "$tmp/anchor" "$tmp/log"
# History rewritten and re-signed with the real key: other records, the
# same key, every hash and signature sound.
fresh log 4 4
both "a re-signed history passes alone" 0 "" "$tmp/log"
both "but not with the anchor" 1 "seg-00000000000000000016.jsonl line 1: seq 16 is not the anchored checkpoint: history rewritten" --anchor "$tmp/anchor" "$tmp/log"
# audit.pub replaced by an attacker who re-signed with their own key.
cp "$tmp/log/audit.pub" "$tmp/real.pub"
rm -rf "$tmp/forged"; mkdir "$tmp/forged"; "$gen" "$tmp/forged" "$tmp/k2" 4 3
"$ctl" audit anchor "$tmp/forged" >"$tmp/forged.anchor"
both "a log signed by another key verifies with its own audit.pub" 0 "" "$tmp/forged"
both "not with --pubkey pinning the real one" 1 "forged/audit.pub: not the key --pubkey pins: replaced" --pubkey "$tmp/real.pub" "$tmp/forged"
rm "$tmp/forged/audit.pub"
both "nor without audit.pub" 1 "forged/seg-00000000000000000001.jsonl line 4: bad signature on checkpoint seq 4" --pubkey "$tmp/real.pub" "$tmp/forged"
both "an anchor of another key" 1 "anchor: bad signature" --anchor "$tmp/forged.anchor" "$tmp/log"

# Bytes flipped across a segment: the two verifiers agree on each.
fresh flip 2 2
f=$(seg flip 4) size=$(stat -c %s "$(seg flip 4)") agree=0 tries=0
cp "$f" "$tmp/flip.orig"
for ((i = 0; i < size; i += size / 20 + 1)); do
  cp "$tmp/flip.orig" "$f"
  printf "$(printf '\\%03o' $(( $(od -An -tu1 -j$i -N1 "$f") ^ 1 )))" |
    dd of="$f" bs=1 seek=$i conv=notrunc status=none
  r1=0; e1=$("$ctl" audit verify "$tmp/flip" 2>&1 >/dev/null) || r1=$?
  r2=0; e2=$(python3 "$pyv" "$tmp/flip" 2>&1 >/dev/null) || r2=$?
  tries=$((tries + 1))
  [ "$r1" -eq 1 ] && [ "$r2" -eq 1 ] &&
    [ "$(grep -o 'line [0-9]*' <<<"$e1")" = "$(grep -o 'line [0-9]*' <<<"$e2")" ] &&
    agree=$((agree + 1))
done
check "every flipped byte fails both verifiers on the same line" test "$agree" -eq "$tries"

# An unsealed tail is said, and is not exit 0.
fresh open 2 3 open
both "records after the last checkpoint are unsealed" 3 "" "$tmp/open"
check "and named" sh -c "'$ctl' audit verify '$tmp/open' | grep -q '^UNSEALED: 3 record(s) after seq 4 carry no signature yet$'"

# show.
fresh log 4 3
rows() { "$ctl" audit show "$@" "$tmp/log" | tail -n +2 | wc -l; }
check "show lists every record" test "$(rows)" -eq 16
check "--op" test "$(rows --op read)" -eq 2
check "--uid" test "$(rows --uid 1001)" -eq 4
check "--path finds a name with a newline" test "$(rows --path '/a?b/*')" -eq 2
check "--path finds a name that is not UTF-8" test "$(rows --path $'/bad\xff*')" -eq 3
check "--since/--until" test "$(rows --since 2026-11-30T00:53:25Z --until @1796000008)" -eq 5
check "--json is one valid object per line, as logged" sh -c "'$ctl' audit show --json '$tmp/log' | python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' && test \$('$ctl' audit show --json '$tmp/log' | wc -l) -eq 16"
check "--since alone" test "$(rows --since @1796000010)" -eq 3
check "--until alone, a date is its midnight" test "$(rows --until 2026-11-30)" -eq 0
check "--since a minute, no seconds" test "$(rows --since 2026-11-30T00:54)" -eq 0
check "--since a date" test "$(rows --since 2026-11-30)" -eq 16
check "filters together: all must hold" test "$(rows --op read --uid 1001)" -eq 1
check "--uid of no one" test "$(rows --uid 4242)" -eq 0
check "--json with filters: only those lines" sh -c "test \$('$ctl' audit show --json --op read '$tmp/log' | grep -c '\"op\":\"read\"') -eq 2 && test \$('$ctl' audit show --json --op read '$tmp/log' | wc -l) -eq 2"
check "the table holds no control byte from a name" sh -c "! '$ctl' audit show '$tmp/log' | LC_ALL=C grep -q \$'[\x01-\x09\x0b-\x1f\x7f]'"
check "and shows them as \\xNN" sh -c "'$ctl' audit show '$tmp/log' | grep -qF '/a\x0ab/line\x0d\x09break'"
cp "$(seg log 5)" "$tmp/seg5"; sed -i '2s/"uid":100[0-9]/"uid":7/' "$(seg log 5)"
expect "show skips a bad line with a warning" 0 "seg-00000000000000000005.jsonl: a bad line skipped \(bad hash\); run audit verify" -- "$ctl" audit show "$tmp/log"
check "and shows the rest" test "$(rows 2>/dev/null)" -eq 15
cp "$tmp/seg5" "$(seg log 5)"
expect "show of no folder" 1 "nowhere" -- "$ctl" audit show "$tmp/nowhere"
expect "show --op of no op" 2 "unknown op 'peek'" -- "$ctl" audit show --op peek "$tmp/log"
expect "show --since of no time" 2 "bad time 'yesterday'" -- "$ctl" audit show --since yesterday "$tmp/log"

# A log the real writer made: a crash recovered, records lost (a gap).
mkdir "$tmp/writer" && "$gen" "$tmp/writer" "$tmp/k" writer
both "a log from the writer, with a recovery and a gap, verifies" 0 "" "$tmp/writer"
check "verify reports the recovery" sh -c "'$ctl' audit verify '$tmp/writer' | grep -qx 'crash recoveries: 1'"
check "and the records lost" sh -c "'$ctl' audit verify '$tmp/writer' | grep -q '^gaps: [1-9][0-9]* record(s) lost'"

# The volume's own audit key: pubkey and its fingerprint in key list.
mkdir "$tmp/vol"
"$ctl" init --key "file:$tmp/k" "$tmp/vol" >/dev/null

# Pseudonymous paths: the same log, its paths under the volume's path key.
rm -rf "$tmp/plog"; mkdir "$tmp/plog"
"$gen" "$tmp/plog" "$tmp/k" 4 3 pseudo "$tmp/vol" "file:$tmp/k"
prows() { "$ctl" audit show "$@" | tail -n +2 | wc -l; }
# Words with a letter past f: hex digits (hashes, pseudonyms) never spell them.
check "a pseudonymous log names no one" sh -c "! grep -q 'ward\|Jane\|line\|utf8\|xxxx' '$tmp'/plog/seg-*"
check "and has a pseudonym for every component" grep -q '"path":"/~[0-9a-f]\{32\}/~[0-9a-f]\{32\}"' "$(seg plog 1)"
both "it verifies without a key" 0 "" "$tmp/plog"
check "show --path without the key finds no name" test "$(prows --path $'/a\nb/*' "$tmp/plog")" -eq 0
check "with --key it finds what the plain log shows" test "$(prows --key "file:$tmp/k" --path $'/a\nb/*' "$tmp/plog" "$tmp/vol")" -eq "$(prows --path $'/a\nb/*' "$tmp/log")"
check "and that is not nothing" test "$(prows --path $'/a\nb/*' "$tmp/log")" -gt 0
check "a name with quotes and a backslash, escaped in the glob" test "$(prows --key "file:$tmp/k" --path '/ward 3/Jane "JD" Doe\\notes.txt' "$tmp/plog" "$tmp/vol")" -eq 2
check "a name that is not UTF-8" test "$(prows --key "file:$tmp/k" --path $'/bad\xff\xfe utf8/\xc3(' "$tmp/plog" "$tmp/vol")" -eq 3
check "a wildcard component matches any one name" test "$(prows --key "file:$tmp/k" --path $'/b*/\xc3(' "$tmp/plog" "$tmp/vol")" -eq 3
mkdir "$tmp/vol2"; "$ctl" init --key "file:$tmp/k2" "$tmp/vol2" >/dev/null
check "another volume's key finds nothing" test "$(prows --key "file:$tmp/k2" --path $'/a\nb/*' "$tmp/plog" "$tmp/vol2")" -eq 0
expect "show --key needs BACKING" 2 "with --key, expected DIR BACKING" -- "$ctl" audit show --key "file:$tmp/k" --path / "$tmp/plog"
expect "show --key needs --path" 2 "give --path GLOB" -- "$ctl" audit show --key "file:$tmp/k" "$tmp/plog" "$tmp/vol"
expect "show --key with a wrong key" 1 "" -- "$ctl" audit show --key "file:$tmp/k2" --path / "$tmp/plog" "$tmp/vol"
"$ctl" audit pubkey --key "file:$tmp/k" "$tmp/vol" >"$tmp/vol.pub"
check "pubkey prints an audit.pub line" grep -Eq '^ed25519 [0-9a-f]{64}$' "$tmp/vol.pub"
fpr=$(cut -d' ' -f2 "$tmp/vol.pub" | xxd -r -p | sha256sum | cut -c1-32)
check "key list prints its fingerprint" sh -c "'$ctl' key list --key 'file:$tmp/k' '$tmp/vol' | grep -qx 'audit key: ed25519 sha256:$fpr'"
expect "pubkey needs --key" 2 "audit pubkey: --key SRC is required" -- "$ctl" audit pubkey "$tmp/vol"

# Files that are not: a FIFO as the anchor or as a segment is refused at
# once, never waited on; a folder as the anchor is named as one.
fresh fifo 2 3
mkfifo "$tmp/anchor.fifo"
expect "a FIFO as the anchor is refused" 1 "anchor.fifo: Invalid argument" -- timeout 10 "$ctl" audit verify --anchor "$tmp/anchor.fifo" "$tmp/fifo"
expect "a folder as the anchor is named" 1 "Is a directory" -- timeout 10 "$ctl" audit verify --anchor "$tmp" "$tmp/fifo"
last=$(ls "$tmp"/fifo/seg-*.jsonl | tail -n 1)
rm "$last"; mkfifo "$last"
expect "a FIFO as a segment is refused" 1 "." -- timeout 10 "$ctl" audit verify "$tmp/fifo"

echo "cli_audit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
