#!/usr/bin/env node
// Prints "<model dir> <data dir>" of the demo's pretrained model and era task (pretrains once into
// the cache folder given, or reuses an intact cache), for `compare` runs on the demo task.
// usage: node bench/e2e/demo-data.mjs <cache-dir>
import { prepareDemo } from '../../dist/demo/index.js';

const cacheDir = process.argv[2];
if (!cacheDir) throw new Error('usage: demo-data.mjs <cache-dir>');
const d = await prepareDemo({ cacheDir });
process.stdout.write(`${d.modelDir} ${d.dataDir}\n`);
