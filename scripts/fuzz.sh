#!/usr/bin/env bash
# Runs every fuzz target of every module, one after the other, each for
# FUZZTIME, and prints a line per target. Exits 1 if any target failed;
# go test then wrote the failing input to the package's testdata/fuzz/NAME/
# directory: commit it with the fix, and plain `go test` replays it from
# then on (seeds and testdata/fuzz inputs always run in the normal tests).
#
#   scripts/fuzz.sh                        # every target, 60s each
#   FUZZTIME=20s scripts/fuzz.sh
#   FUZZ_MATCH='Callback|Logout' scripts/fuzz.sh   # targets whose name matches
#   FUZZ_PARALLEL=2 scripts/fuzz.sh        # fuzzing processes per target (default 1)
#   FUZZ_MINIMIZE=60s scripts/fuzz.sh       # time to minimize each new input (default 5s;
#                                          # execs are reported only between minimizations)
#
# Run it by hand (it is not part of .ci/run): it keeps the CPUs busy for
# FUZZTIME times the number of targets.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-60s}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_MINIMIZE=${FUZZ_MINIMIZE:-5s}
modules=(. interop bench e2e)

results=()
failed=0
total=0
for m in "${modules[@]}"; do
	[ -f "$m/go.mod" ] || continue
	# Package directories of this module only (go list stops at nested modules).
	while IFS= read -r dir; do
		rel=".${dir#"$(cd "$m" && pwd)"}"
		for name in $(grep -ho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go 2>/dev/null | sed 's/^func //; s/($//' | sort -u); do
			[[ "$name" =~ $FUZZ_MATCH ]] || continue
			total=$((total + 1))
			label="$m/${rel#./}"
			label="${label#./}"
			echo "== $name ($label) for $FUZZTIME" >&2
			log=$(mktemp)
			start=$(date +%s)
			(cd "$m" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZ_MINIMIZE" -parallel "$FUZZ_PARALLEL" "$rel") >"$log" 2>&1
			rc=$?
			secs=$(( $(date +%s) - start ))
			last=$(grep -o 'execs: [0-9]* ([0-9]*/sec), new interesting: [0-9]* (total: [0-9]*)' "$log" | tail -1)
			if [ $rc -eq 0 ]; then
				results+=("ok    $name  $label  ${secs}s  $last")
			else
				failed=$((failed + 1))
				results+=("FAIL  $name  $label  ${secs}s  $last")
				sed 's/^/    /' "$log" | tail -40 >&2
				grep -h 'Failing input written to' "$log" | sed "s|^|    ($label) |" >&2
			fi
			rm -f "$log"
		done
	done < <(cd "$m" && go list -f '{{.Dir}}' ./...)
done

echo
echo "fuzz targets: $total, failed: $failed (FUZZTIME=$FUZZTIME)"
printf '%s\n' "${results[@]}"
[ "$failed" -eq 0 ]
