# The compiled TypeScript (dist/) that bin/vio4wd.js runs.
(cd "$ROOT" && npx tsc -p tsconfig.json) || fail "TypeScript build (tsc)" "fix the type errors shown above"
say "build: ok (dist/)"
