#!/usr/bin/env bash
# Prepares build-gpu/bundle.tar.xz for scripts/gpu-check.sh on a GPU machine that has no Node
# and no network: this machine's node binary, the compiled dist/, and the few npm packages the
# CUDA build and the parity tests need (cmake-js and its dependencies, node-addon-api,
# node-api-headers, @huggingface/tokenizers), all xz-compressed. Must stay under 64 MiB
# together with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build:ts >/dev/null
out=build-gpu
rm -rf "$out/stage" "$out/bundle.tar.xz"
mkdir -p "$out/stage/bin" "$out/stage/node_modules"
cp "$(readlink -f "$(command -v node)")" "$out/stage/bin/node"
cp -r dist "$out/stage/dist"
# The dependency closure of the packages the build needs (flat node_modules layout).
node - "$out/stage/node_modules" cmake-js node-addon-api node-api-headers @huggingface/tokenizers <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [dest, ...roots] = process.argv.slice(2);
const top = path.resolve('node_modules');
const seen = new Set(); // top-level package names to copy (nested ones travel with their parent)
const walked = new Set(); // package folders already walked
const walk = (dir) => {
  if (walked.has(dir)) return;
  walked.add(dir);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const d of Object.keys(pj.dependencies ?? {})) {
    let found;
    for (let up = dir; ; up = path.dirname(up)) {
      const cand = path.join(up, 'node_modules', d);
      if (fs.existsSync(path.join(cand, 'package.json'))) { found = cand; break; }
      if (up === path.dirname(up)) throw new Error(`missing dependency ${d} of ${dir}`);
    }
    if (path.dirname(found) === top || path.dirname(path.dirname(found)) === top && d.startsWith('@')) seen.add(d);
    walk(found);
  }
};
const visit = (name) => {
  seen.add(name);
  walk(path.join(top, name));
};
roots.forEach(visit);
for (const name of seen) fs.cpSync(path.join('node_modules', name), path.join(dest, name), { recursive: true, dereference: true });
console.log(`bundled ${seen.size} packages: ${[...seen].sort().join(' ')}`);
JS
data=${KFAC_PEFT_DATA:-../shared/data}
if [ -f "$data/llama2c/stories260K.bin" ]; then
  mkdir -p "$out/stage/data" && cp "$data/llama2c/stories260K.bin" "$out/stage/data/"
  echo "bundled the 50-step run's model: $data/llama2c/stories260K.bin"
else
  echo "no $data/llama2c/stories260K.bin: the check's 50-step run will need STORIES260K on the GPU machine" >&2
fi
addon=build-cuda/Release/kfac_peft_cuda.node
if [ -f "$addon" ]; then
  newer=$(find native CMakeLists.txt scripts/build-cuda.mjs -type f -newer "$addon" | head -3)
  if [ -z "$newer" ]; then
    mkdir -p "$out/stage/prebuilt" && cp "$addon" "$out/stage/prebuilt/"
    echo "$(git rev-parse --short HEAD)$(git diff --quiet -- native CMakeLists.txt || echo '+changes'), $(date -u -r "$addon" +%FT%TZ)" > "$out/stage/prebuilt/built.txt"
    echo "bundled the prebuilt CUDA addon ($(cat "$out/stage/prebuilt/built.txt"))"
  else
    echo "not bundling $addon: older than $(echo "$newer" | tr '\n' ' ')(rebuild it, or the check builds on the device)" >&2
  fi
fi
tar -C "$out/stage" -cf - . | xz -T2 -9 > "$out/bundle.tar.xz"
rm -rf "$out/stage"
bundle=$(stat -c %s "$out/bundle.tar.xz")
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}')
echo "bundle: $out/bundle.tar.xz $((bundle / 1048576)) MiB ($bundle bytes); working tree $((tree / 1048576)) MiB; together $(((bundle + tree) / 1048576)) MiB of 64"
if [ $((bundle + tree)) -ge $((64 * 1048576)) ]; then echo "too large for one carry (64 MiB)" >&2; exit 1; fi
