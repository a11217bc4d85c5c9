#!/usr/bin/env bash
# test_cli.sh — phifsctl and phifs as a user meets them: exit codes (0 ok,
# 1 failed, 2 usage), one-line errors naming the thing at fault, key files.
# Usage: test_cli.sh BUILD_DIR
set -u
ctl="$1/phifsctl"
src=$(cd "$(dirname "$0")/.." && pwd)
daemon="$1/phifs"
tmp=$(mktemp -d)
trap 'rmtree "$tmp"' EXIT
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

expect "help" 0 "" -- "$ctl" --help
check "help lists init" sh -c "'$ctl' --help | grep -q 'init --key SRC BACKING'"
expect "no command" 2 "no command" -- "$ctl"
expect "unknown command" 2 "unknown command 'frobnicate'" -- "$ctl" frobnicate
expect "unknown subcommand names it" 2 "unknown command 'key frob'" -- "$ctl" key frob
expect "key without a subcommand" 2 "key: expected a subcommand" -- "$ctl" key
expect "unknown option, one line" 2 "init: unknown option '--frob'" -- "$ctl" init --frob --key file:/k /v
expect "option without its value" 2 "init: --key needs a value" -- "$ctl" init /v --key
expect "daemon help" 0 "" -- "$daemon" --help

expect "keygen" 0 "" -- "$ctl" keygen "$tmp/k1"
check "key file is 0400" test "$(stat -c %a "$tmp/k1")" = 400
check "key file is 64 hex digits" grep -Eqx '[0-9a-f]{64}' "$tmp/k1"
expect "keygen refuses an existing file" 1 "k1" -- "$ctl" keygen "$tmp/k1"
expect "keygen needs a path" 2 "PATH" -- "$ctl" keygen

mkdir "$tmp/vol"
expect "init needs --key" 2 "--key" -- "$ctl" init "$tmp/vol"
mkdir "$tmp/full"; touch "$tmp/full/plain.txt"
expect "init refuses a non-empty folder" 1 "full: not empty \\(holds 'plain.txt'\\)" -- "$ctl" init --key "file:$tmp/k1" "$tmp/full"
check "a refused init leaves the folder as it was" test ! -e "$tmp/full/.phifs"
expect "init of a missing dir" 1 "nowhere" -- "$ctl" init --key "file:$tmp/k1" "$tmp/nowhere"
expect "init" 0 "" -- "$ctl" init --key "file:$tmp/k1" "$tmp/vol"
check "init prints the audit key's fingerprint, the one key list prints" sh -c "mkdir '$tmp/volfpr' && a=\$('$ctl' init --key 'file:$tmp/k1' '$tmp/volfpr' | grep -E '^audit key: ed25519 sha256:[0-9a-f]{32}\$') && '$ctl' key list --key 'file:$tmp/k1' '$tmp/volfpr' | grep -qxF \"\$a\""
check "keystore exists" test -f "$tmp/vol/.phifs/keystore"
check "init marks the volume's folders as all recorded (keystore v2)" sh -c "od -An -tu1 -j8 -N1 '$tmp/vol/.phifs/keystore' | grep -qw 2"
check "init seals the root folder's record" python3 -c "import os,sys; sys.exit(len(os.getxattr('$tmp/vol', 'user.phifs.dir')) != 68)"
expect "init twice" 1 "already a phifs volume" -- "$ctl" init --key "file:$tmp/k1" "$tmp/vol"
check "key list shows v1 active" sh -c "'$ctl' key list --key 'file:$tmp/k1' '$tmp/vol' | grep -Eq '^1 +active'"

"$ctl" keygen "$tmp/k2" >/dev/null 2>&1
expect "wrong key" 1 "wrong key" -- "$ctl" key list --key "file:$tmp/k2" "$tmp/vol"
cp "$tmp/k1" "$tmp/loose"; chmod 0644 "$tmp/loose"
expect "group-readable key" 1 "loose.*(group|other)" -- "$ctl" key list --key "file:$tmp/loose" "$tmp/vol"
printf 'short' > "$tmp/bad"; chmod 0400 "$tmp/bad"
expect "malformed key" 1 "bad" -- "$ctl" key list --key "file:$tmp/bad" "$tmp/vol"
expect "cmd: key source" 0 "" -- "$ctl" key list --key "cmd:cat $tmp/k1" "$tmp/vol"
expect "not a volume" 1 "not a phifs volume" -- "$ctl" key list --key "file:$tmp/k1" "$tmp"

cp -r "$tmp/vol" "$tmp/vol2"
printf '\x01' | dd of="$tmp/vol2/.phifs/keystore" bs=1 seek=40 conv=notrunc 2>/dev/null
expect "corrupt keystore" 1 "corrupt" -- "$ctl" key list --key "file:$tmp/k1" "$tmp/vol2"

# The daemon's argument and config errors need no FUSE.
expect "daemon needs --key" 2 "--key SRC is required" -- "$daemon" "$tmp/vol" "$tmp/mnt"
expect "daemon needs two dirs" 2 "BACKING and MOUNTPOINT" -- "$daemon" --key "file:$tmp/k1" "$tmp/vol"
printf '[phifs]\nkey = file:%s\nfrobs = 3\n' "$tmp/k1" > "$tmp/bad.conf"
expect "config names file and line" 2 "bad.conf:3: unknown setting 'frobs'" -- "$daemon" --config "$tmp/bad.conf" "$tmp/vol" "$tmp/mnt"
printf '[phifs]\nforeground = maybe\n' > "$tmp/bad2.conf"
expect "config bad value" 2 "bad2.conf:2: bad value for 'foreground'" -- "$daemon" --config "$tmp/bad2.conf" "$tmp/vol" "$tmp/mnt"
printf '[phifs]\nkey = file:%s\npoll = often\n' "$tmp/k1" > "$tmp/bad3.conf"
expect "config bad poll" 2 "bad3.conf:3: bad value for 'poll'" -- "$daemon" --config "$tmp/bad3.conf" "$tmp/vol" "$tmp/mnt"
expect "a missing policy is bad usage" 2 "^phifs: $tmp/none.ini: No such file or directory\$" -- "$daemon" --key "file:$tmp/k1" --policy "$tmp/none.ini" "$tmp/vol" "$tmp/mnt"
printf '[role:r]\nread = /a/***\n' > "$tmp/bad.ini"
expect "an invalid policy names file and line" 2 "bad.ini:2: '\*\*\*' in '/a/\*\*\*'" -- "$daemon" --key "file:$tmp/k1" --policy "$tmp/bad.ini" "$tmp/vol" "$tmp/mnt"
expect "an invalid policy via -o too" 2 "bad.ini:2:" -- "$daemon" -o "key=file:$tmp/k1,policy=$tmp/bad.ini" "$tmp/vol" "$tmp/mnt"
# One settings table for the file, -o and argv; the command line wins.
printf '[phifs]\nkey = file:%s\n' "$tmp/k1" > "$tmp/k1.conf"
printf 'key = file:%s\n' "$tmp/nokey" > "$tmp/nokey.conf"
expect "audit-dir and no-audit via -o refused" 2 "audit-dir /a and no-audit:" -- "$daemon" -o "key=file:$tmp/k1,audit_dir=/a,no_audit" "$tmp/vol" "$tmp/mnt"
expect "--audit-dir and --no-audit refused" 2 "audit-dir /a and no-audit:" -- "$daemon" --key "file:$tmp/k1" --audit-dir /a --no-audit "$tmp/vol" "$tmp/mnt"
# The [audit] section: strict, named by file and line; what this build
# cannot honour refused, never ignored.
printf '[phifs]\nkey = file:%s\n[audit]\nsync = sometimes\n' "$tmp/k1" > "$tmp/sync.conf"
expect "[audit] bad sync names file and line" 2 "sync.conf:4: bad value for 'sync' \\(batch, always or none\\)" -- "$daemon" --config "$tmp/sync.conf" "$tmp/vol" "$tmp/mnt"
printf '[audit]\nkey = file:%s\n' "$tmp/k1" > "$tmp/akey.conf"
expect "[audit] takes only its own settings" 2 "akey.conf:2: unknown setting 'key' in \\[audit\\]" -- "$daemon" --config "$tmp/akey.conf" "$tmp/vol" "$tmp/mnt"
expect "-o bool with a bad value" 2 "bad value for 'no_poll'" -- "$daemon" -o "no_poll=maybe" --key "file:$tmp/k1" "$tmp/vol" "$tmp/mnt"
expect "-o string given bare" 2 "bad value for 'key'" -- "$daemon" -o key "$tmp/vol" "$tmp/mnt"
expect "config naming a folder" 2 "$tmp: is a folder, not a config file" -- "$daemon" --config "$tmp" --key "file:$tmp/k1" "$tmp/vol" "$tmp/mnt"
printf 'key = file:%s\nkey = file:%s\n' "$tmp/k1" "$tmp/k2" > "$tmp/twice.conf"
expect "config key given twice" 2 "twice.conf:2: 'key' given twice \\(first at line 1\\)" -- "$daemon" --config "$tmp/twice.conf" "$tmp/vol" "$tmp/mnt"
expect "missing config file" 2 "nowhere.conf" -- "$daemon" --config "$tmp/nowhere.conf" --key "file:$tmp/k1" "$tmp/vol" "$tmp/mnt"
expect "unknown long option" 2 "unknown option '--frob'" -- "$daemon" --frob --key "file:$tmp/k1" "$tmp/vol" "$tmp/mnt"
check "help lists every command-line setting" sh -c "'$daemon' --help | grep -q -- '--audit-dir DIR' && '$daemon' --help | grep -q -- '--no-poll' && '$daemon' --help | grep -q -- '-o OPT'"
expect "missing mountpoint" 1 "mountpoint .*nowhere" -- "$daemon" -f --key "file:$tmp/k1" "$tmp/vol" "$tmp/nowhere"
mkdir "$tmp/mnt"
expect "argv --key wins over the config" 1 "wrong key" -- "$daemon" -f --config "$tmp/k1.conf" --key "file:$tmp/k2" "$tmp/vol" "$tmp/mnt"
expect "-o key= wins over the config" 1 "wrong key" -- "$daemon" -f -o "key=file:$tmp/k2" --config "$tmp/k1.conf" "$tmp/vol" "$tmp/mnt"
expect "config's key not read when argv gives one" 1 "wrong key" -- "$daemon" -f --config="$tmp/nokey.conf" --key "file:$tmp/k2" "$tmp/vol" "$tmp/mnt"
expect "daemon wrong key" 1 "wrong key" -- "$daemon" --key "file:$tmp/k2" "$tmp/vol" "$tmp/mnt"
mkdir "$tmp/novol"
expect "daemon not a volume" 1 "not a phifs volume" -- "$daemon" --key "file:$tmp/k1" "$tmp/novol" "$tmp/mnt"
# Mount points that would hide files or loop into the volume: refused
# before any key is read, so a wrong key shows they come first.
expect "mountpoint is the backing folder" 1 "mountpoint .*/vol/: is the backing folder itself" -- "$daemon" -f --key "file:$tmp/k2" "$tmp/vol" "$tmp/vol/"
mkdir -p "$tmp/vol/sub" "$tmp/vol/.phifs/sub"
expect "mountpoint inside the backing folder" 1 "mountpoint .*/vol/sub: inside the backing folder" -- "$daemon" -f --key "file:$tmp/k2" "$tmp/vol" "$tmp/vol/sub"
expect "mountpoint inside the volume's own folder" 1 "inside the backing folder" -- "$daemon" -f --key "file:$tmp/k2" "$tmp/vol" "$tmp/vol/.phifs/sub"
rmdir "$tmp/vol/sub" "$tmp/vol/.phifs/sub"
expect "backing folder inside the mountpoint" 1 "backing folder .*/vol: inside the mountpoint $tmp\$" -- "$daemon" -f --key "file:$tmp/k2" "$tmp/vol" "$tmp"
mkdir "$tmp/busy"; touch "$tmp/busy/hidden.txt"
expect "non-empty mountpoint" 1 "mountpoint .*busy: not empty \\(holds 'hidden.txt'\\); -o nonempty" -- "$daemon" -f --key "file:$tmp/k2" "$tmp/vol" "$tmp/busy"
expect "-o nonempty lets it past" 1 "wrong key" -- "$daemon" -f --key "file:$tmp/k2" -o nonempty "$tmp/vol" "$tmp/busy"
expect "a key command that hangs is stopped" 1 "key command sleep: no key after 1 s \\(key_timeout\\)" -- timeout 20 "$daemon" -f --key-timeout 1 --key "cmd:sleep 60" "$tmp/vol" "$tmp/mnt"
expect "key_timeout by -o too" 1 "key command sleep: no key after 1 s" -- timeout 20 "$daemon" -f -o key_timeout=1 --key "cmd:sleep 60" "$tmp/vol" "$tmp/mnt"
expect "a key timeout of 0 is bad usage" 2 "bad value for 'key_timeout'" -- "$daemon" --key-timeout 0 --key "file:$tmp/k1" "$tmp/vol" "$tmp/mnt"
mkfifo -m 0600 "$tmp/fifo"
expect "a FIFO as key file is refused at once" 1 "key file .*fifo: not a regular file" -- timeout 20 "$daemon" -f --key "file:$tmp/fifo" "$tmp/vol" "$tmp/mnt"
expect "unknown -o options go to FUSE, which refuses them as usage" 2 "mount option 'frob'" -- "$daemon" -f --key "file:$tmp/k1" -o allow_other,frob "$tmp/vol" "$tmp/mnt"
expect "daemon option without its value" 2 "option --key needs a value" -- "$daemon" "$tmp/vol" "$tmp/mnt" --key

expect "status without a daemon" 1 "no daemon answers" -- "$ctl" status "$tmp/vol"
expect "status --json and --prometheus" 2 "not both" -- "$ctl" status --json --prometheus "$tmp/vol"
expect "status of two places" 2 "expected --socket PATH or one BACKING" -- "$ctl" status --socket "$tmp/s" "$tmp/vol"
expect "unmount without a daemon" 1 "no daemon answers" -- "$ctl" unmount --socket "$tmp/none.sock"

# Access policies: check and explain, with no daemon.
example="$src/conf/policy.example.ini"
bad="$src/tests/data/policy/bad"
# stdout_has NAME PATTERN -- CMD...: exit 0 and stdout matching.
stdout_has() {
  local name=$1 pat=$2
  shift 3
  check "$name" sh -c '"$@" | grep -Eq -- "$0"' "$pat" "$@"
}
expect "policy check of the example" 0 "" -- "$ctl" policy check "$example"
stdout_has "policy check says valid" ": valid\$" -- "$ctl" policy check "$example"
expect "policy check names file and line" 1 "dotdot.ini:2: '\.\.' in '/patients/\.\./billing/\*\*'" -- "$ctl" policy check "$bad/dotdot.ini"
expect "policy check of an unknown role" 1 "unknown_role.ini:4: unknown role 'ghost'" -- "$ctl" policy check "$bad/unknown_role.ini"
printf '[role:r]\nread = /a\n[user:no-such-user-here]\nroles = r\n' > "$tmp/nouser.ini"
expect "policy check resolves names on the system" 1 "nouser.ini:3: no user named 'no-such-user-here'" -- "$ctl" policy check "$tmp/nouser.ini"
expect "policy check of a missing file" 1 "nowhere.ini: No such file" -- "$ctl" policy check "$tmp/nowhere.ini"
expect "policy check of a folder" 1 "$tmp: is a folder, not a policy file" -- "$ctl" policy check "$tmp"
expect "policy check needs a file" 2 "policy check: expected one FILE" -- "$ctl" policy check
expect "policy without a subcommand" 2 "policy: expected a subcommand" -- "$ctl" policy
expect "unknown policy subcommand" 2 "unknown command 'policy frob'" -- "$ctl" policy frob
stdout_has "explain allows a physician's write" "^allow: role 'physician' of \[user:1001\] \(.*:48\), write = /patients/\*\* \(.*:20\)\$" -- "$ctl" policy explain "$example" --uid 1001 --gid 1001 --op write /patients/1201/chart.txt
stdout_has "explain denies billing a chart" "^deny: no role grants it; defaults: unmatched = deny \(.*:14\)\$" -- "$ctl" policy explain "$example" --uid 1400 --gid 2000 --op read /patients/1201/chart.txt
stdout_has "explain grants through --groups" "^allow: role 'nurse' of \[group:3000\]" -- "$ctl" policy explain "$example" --uid 1300 --gid 1300 --groups 10,3000 --op write /patients/1201/notes/n1
stdout_has "explain without that group denies" "^deny" -- "$ctl" policy explain "$example" --uid 1300 --gid 1300 --groups 10 --op write /patients/1201/notes/n1
stdout_has "explain: a patient reads their own folder" "^allow: role 'patient'" -- "$ctl" policy explain "$example" --uid 1201 --gid 1201 --groups 4000 --op read /patients/1201/chart.txt
stdout_has "explain: and not another's" "^deny" -- "$ctl" policy explain "$example" --uid 1201 --gid 1201 --groups 4000 --op read /patients/1202/chart.txt
stdout_has "explain: ancestors are traversed" "under read = /patients/\\\$\\{uid\\}/\*\*" -- "$ctl" policy explain "$example" --uid 1201 --gid 1201 --groups 4000 --op traverse /patients
stdout_has "explain: root denied under root = deny" "^deny: no role grants it; defaults: root = deny" -- "$ctl" policy explain "$example" --uid 0 --op read /shared/form
stdout_has "explain --json" '^\{"allow":false,"op":"read","path":"/billing/x","uid":1201,"gid":1201,"groups":\[4000\],.*"rule":"no role grants it; defaults: unmatched = deny","rule_line":14,' -- "$ctl" policy explain "$example" --json --uid 1201 --gid 1201 --groups 4000 --op read /billing/x
# uid 0's gid and name come from passwd when not given.
printf '[role:home]\nread = /home/${user}/**\n[group:0]\nroles = home\n' > "$tmp/home.ini"
stdout_has "explain takes gid and name from the system" "^allow: role 'home' of \[group:0\]" -- "$ctl" policy explain "$tmp/home.ini" --uid root --op read /home/root/x
stdout_has "explain expands \${user} to the uid's name" "^deny" -- "$ctl" policy explain "$tmp/home.ini" --uid 0 --op read /home/other/x
expect "explain of a bad policy fails as check does" 1 "dotdot.ini:2:" -- "$ctl" policy explain "$bad/dotdot.ini" --uid 1 --op read /x
expect "explain needs --uid and --op" 2 "--uid N and --op OP are required" -- "$ctl" policy explain "$example" --op read /x
expect "explain of an unknown op" 2 "--op exec: read, write, list or traverse" -- "$ctl" policy explain "$example" --uid 1 --op exec /x
expect "explain of a path with .." 2 "PATH /a/\.\./b: not absolute" -- "$ctl" policy explain "$example" --uid 1 --op read /a/../b
expect "explain of a relative path" 2 "PATH a/b: not absolute" -- "$ctl" policy explain "$example" --uid 1 --op read a/b
expect "explain of an unknown group name" 2 "--groups no-such-group-here: no such group" -- "$ctl" policy explain "$example" --uid 1 --groups no-such-group-here --op read /x
expect "explain option without its value" 2 "policy explain: --uid needs a value" -- "$ctl" policy explain "$example" /x --op read --uid

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
