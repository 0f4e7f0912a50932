#!/usr/bin/env bash
# A table of ginkgo JUnit files: one line per test that ran (result, seconds, name), sorted by
# name, then totals (skipped tests are only counted).
#   scripts/junit-table.sh junit_01.xml [junit_02.xml ...]
set -euo pipefail
cat "$@" | tr '\n' ' ' | sed 's/<testcase /\n<testcase /g' | awk '
  /^<testcase / {
    name = $0; sub(/^<testcase name="/, "", name); sub(/" classname=.*/, "", name)
    t = $0; sub(/.* time="/, "", t); sub(/".*/, "", t)
    if ($0 ~ /^<testcase [^>]*>[ ]*<skipped/) { skipped++; next }
    r = ($0 ~ /<failure|<error/) ? "FAIL" : "pass"
    if (r == "pass") passed++; else failed++
    gsub(/&#34;|&quot;/, "\"", name); gsub(/&amp;/, "\\&", name); gsub(/&#39;/, "'"'"'", name)
    printf "%s\t%-4s %6.1f s\n", name, r, t
  }
  END { printf "~totals\t%d passed, %d failed, %d skipped\n", passed, failed, skipped }' |
  sort | awk -F'\t' '$1 == "~totals" { print $2; next } { printf "%s  %s\n", $2, $1 }'
