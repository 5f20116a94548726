// npm install hook: use the prebuilt binary shipped for this platform when it loads,
// otherwise build from source with node-gyp (needs python3, make and a C++17 compiler).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'kfac_peft.node');

if (existsSync(prebuilt) && process.env.KFAC_PEFT_BUILD_FROM_SOURCE !== '1') {
  try {
    createRequire(import.meta.url)(prebuilt);
    console.log(`kfac-peft: using the prebuilt binary ${prebuilt}`);
    process.exit(0);
  } catch (e) {
    console.warn(`kfac-peft: the prebuilt binary did not load (${String(e.message).split('\n')[0]}); building from source`);
  }
}

// npm exports the path of its own node-gyp; fall back to one on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp && existsSync(gyp) ? [process.execPath, [gyp]] : ['node-gyp', []];
const r = spawnSync(cmd, [...args, 'rebuild', '-j', 'max'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (r.status !== 0) {
  console.error(
    'kfac-peft: building the native addon failed.\n' +
      '  Needs: python3, make and a C++17 compiler (g++ >= 9 or clang >= 10), and Node >= 20.\n' +
      '  Retry with: npm rebuild kfac-peft',
  );
  process.exit(r.status ?? 1);
}
