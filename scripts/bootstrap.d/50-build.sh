# profiles: demo test
# The compiled TypeScript (dist/) that bin/vio4wd.js runs. tsc (about 6 s) runs again only when
# something it reads changed: the names, sizes and modification times of everything under src/,
# tsconfig.json and the installed npm packages (their lock checksum); dist/.vio4wd-build.key
# holds what the last successful build saw.
build_key=$( {
  find "$ROOT/src" -printf '%P %s %T@\n' | LC_ALL=C sort
  stat -c '%n %s %Y' "$ROOT/tsconfig.json"
  cat "$ROOT/node_modules/.vio4wd-lock.sha" 2>/dev/null || echo no-npm-stamp
} | sha256sum | cut -c1-32)
build_stamp="$ROOT/dist/.vio4wd-build.key"
if [[ ! -f $ROOT/dist/cli/main.js || $(cat "$build_stamp" 2>/dev/null) != "$build_key" ]]; then
  rm -f "$build_stamp"
  (cd "$ROOT" && npx tsc -p tsconfig.json) || fail "TypeScript build (tsc)" "fix the type errors shown above"
  echo "$build_key" > "$build_stamp"
  say "build: ok (dist/ compiled)"
else
  say "build: ok (dist/ up to date)"
fi
unset build_key build_stamp
