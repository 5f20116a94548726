// Prints the C++ sources of the given folders (sorted, relative, space separated) for binding.gyp,
// so that adding a kernel file never means editing the build file.
const fs = require('node:fs');
const path = require('node:path');
const root = path.resolve(__dirname, '..');
const out = [];
for (const dir of process.argv.slice(2)) {
  for (const f of fs.readdirSync(path.join(root, dir)).sort()) {
    if (f.endsWith('.cpp') || f.endsWith('.cc')) out.push(`${dir}/${f}`);
  }
}
process.stdout.write(out.join(' '));
