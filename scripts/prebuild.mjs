// Before `npm pack` (and with --clean after it): put the freshly built CPU binary into prebuilds/<platform>-<arch>/,
// so the tarball installs without a compiler on the same platform.
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (process.argv.includes('--clean')) {
  // After `npm pack`: a source checkout must load its own fresh build, not this copy.
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  process.exit(0);
}
const built = join(root, 'build', 'Release', 'kfac_peft.node');
if (!existsSync(built)) {
  const r = spawnSync('npx', ['node-gyp', 'rebuild', '-j', 'max'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
copyFileSync(built, join(dir, 'kfac_peft.node'));
console.log(`prebuilt binary: ${join(dir, 'kfac_peft.node')}`);
