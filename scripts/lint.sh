#!/bin/sh
# lint.sh OUT: cppcheck and clang-tidy on src/*.c (make lint). Any finding
# fails, except in the generated skeleton under OUT/, which is not ours.
# Checks left out: bugprone-suspicious-string-compare (kernel style writes
# !strcmp()), clang-analyzer-valist.Uninitialized (clang 14 reports every
# va_start/vfprintf pair), the swappable-parameters and widening-conversion
# style checks, and insecureAPI (memcpy, snprintf: used with explicit sizes).
set -u
out=${1:-build}
flags="-std=c11 -D_GNU_SOURCE -Iinclude -Isrc -I$out -DFH_VERSION=\"lint\""
checks="-*,clang-analyzer-*,bugprone-*,-bugprone-suspicious-string-compare,\
-clang-analyzer-valist.Uninitialized,-clang-analyzer-security.insecureAPI.*,\
-clang-analyzer-optin.portability.UnixAPI,-bugprone-easily-swappable-parameters,\
-bugprone-narrowing-conversions,-bugprone-reserved-identifier,-bugprone-assignment-in-if-condition,\
-bugprone-implicit-widening-of-multiplication-result"
status=0
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability --inline-suppr \
	--suppress=missingIncludeSystem -D__x86_64__ -D_GNU_SOURCE -Iinclude -Isrc -I"$out" \
	--template='{file}:{line}: {severity}: {id}: {message}' src/*.c || status=1
# shellcheck disable=SC2086
tidy=$(clang-tidy --quiet --checks="$checks" src/*.c -- $flags 2>/dev/null |
	grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' | grep -v "^$out/\|/$out/")
if [ -n "$tidy" ]; then
	echo "$tidy"
	status=1
fi
[ $status = 0 ] && echo "lint: cppcheck and clang-tidy clean on src/"
exit $status
