# npm packages, installed again only when package-lock.json changed.
stamp="$ROOT/node_modules/.vio4wd-lock.sha"
sum=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$sum" ]]; then
  say "npm: installing packages (npm ci)"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci" "check access to the npm registry, then rerun"
  echo "$sum" > "$stamp"
fi
say "npm: ok"
