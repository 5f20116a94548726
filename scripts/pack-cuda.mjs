// Builds (when needed) and packs the optional CUDA binary package
// kfac-peft-<platform>-<arch>-cuda13, pinned to the main package's version:
//   node scripts/pack-cuda.mjs [--out DIR] [--rebuild]
// It holds kfac_peft_cuda.node only; cudart, cuBLAS and cuSOLVER come from the system.
// Prints the tarball's path on the last line.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const out = resolve(args.includes('--out') ? args[args.indexOf('--out') + 1] : join(root, 'build-cuda'));
const main = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const name = `kfac-peft-${process.platform}-${process.arch}-cuda13`;
const binary = join(root, 'build-cuda', 'Release', 'kfac_peft_cuda.node');

if (args.includes('--rebuild') || !existsSync(binary)) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-cuda.mjs')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const stage = join(root, 'build-cuda', 'package');
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
copyFileSync(binary, join(stage, 'kfac_peft_cuda.node'));
const pkg = {
  name,
  version: main.version,
  description: `CUDA 13 binary of kfac-peft ${main.version} for ${process.platform}-${process.arch} (sm_80, sm_90, PTX). Needs the NVIDIA driver, cuBLAS and cuSOLVER 13 on the system.`,
  license: main.license,
  os: [process.platform],
  cpu: [process.arch],
  files: ['kfac_peft_cuda.node', 'README.md'],
  peerDependencies: { 'kfac-peft': main.version },
};
writeFileSync(join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
writeFileSync(
  join(stage, 'README.md'),
  `# ${name}\n\nThe CUDA binary of [kfac-peft](https://www.npmjs.com/package/kfac-peft) ${main.version}. Install it next to the same version:\n\n    npm install kfac-peft@${main.version} ${name}@${main.version}\n\nkfac-peft loads it only when the versions match; \`npx kfac-peft doctor\` says what it found.\nThe NVIDIA driver and the CUDA 13 runtime, cuBLAS and cuSOLVER libraries must be installed on the system (they are not bundled).\n`,
);
mkdirSync(out, { recursive: true });
const r = spawnSync('npm', ['pack', '--pack-destination', out, '--silent'], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (r.status !== 0) process.exit(r.status ?? 1);
const tgz = join(out, r.stdout.trim().split('\n').pop());
console.log(tgz);
