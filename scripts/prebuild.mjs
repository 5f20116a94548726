// Before `npm pack`: put the freshly built CPU binary into prebuilds/<platform>-<arch>/,
// so the tarball installs without a compiler on the same platform.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build', 'Release', 'kfac_peft.node');
if (!existsSync(built)) {
  const r = spawnSync('npx', ['node-gyp', 'rebuild', '-j', 'max'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
copyFileSync(built, join(dir, 'kfac_peft.node'));
console.log(`prebuilt binary: ${join(dir, 'kfac_peft.node')}`);
