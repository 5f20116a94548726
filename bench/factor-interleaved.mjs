// The factor update against OpenBLAS ssyrk in alternating rounds, for a machine shared with other
// work: each round times ours (median of `rep` calls) and then the peer (the same, through
// bench/peer.py), and the ratio is taken per round, so both sides of a ratio saw about the same
// load. Prints, per case, the median of the per-round ratios (peer time / our time) and the
// ratio of the two sides' fastest rounds.
// Run: npm run build:ts && node bench/factor-interleaved.mjs [d=64,256,512,1024] [R=512,2048,8192] [t=1,2] [rounds=7]
import { kfac, setNumThreads, Tensor } from '../dist/index.js';
import { PeerPool } from '../dist/bench/peer.js';
import { timeMs } from '../dist/bench/timing.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=')));
const list = (s, dflt) => (s ?? dflt).split(',').map(Number);
const ds = list(args.d, '64,256,512,1024');
const Rs = list(args.R, '512,2048,8192');
const threads = list(args.t, '1,2');
const rounds = Number(args.rounds ?? 7);
const median = (xs) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];
const peers = new PeerPool(true, false);
console.log('d     R     threads  median ratio  fastest-round ratio  ours ms (fastest)  ssyrk ms (fastest)');
for (const t of threads)
  for (const d of ds)
    for (const R of Rs) {
      const x = Tensor.randn([R, d], { seed: 1 });
      const F = Tensor.zeros([d, d]);
      const rep = Math.max(5, Math.min(100, Math.ceil(1e9 / (d * d * R))));
      const peer = await peers.get(t);
      if (!peer) throw new Error('the numpy/scipy peer is not available');
      const ratios = [];
      const ours = [];
      const theirs = [];
      for (let r = 0; r < rounds; r++) {
        setNumThreads(t);
        const o = timeMs(() => kfac.updateFactor(F, x, { beta: 0.95 }), rep, 2);
        const p = await peer.ms({ op: 'syrk', d, R, beta: 0.95, repeats: rep });
        ratios.push(p / o);
        ours.push(o);
        theirs.push(p);
      }
      const [o, p] = [Math.min(...ours), Math.min(...theirs)];
      console.log(`${String(d).padEnd(6)}${String(R).padEnd(6)}${String(t).padEnd(9)}${median(ratios).toFixed(3).padEnd(14)}${(p / o).toFixed(3).padEnd(21)}${o.toPrecision(3).padEnd(19)}${p.toPrecision(3)}`);
      x.dispose();
      F.dispose();
    }
await peers.close();
setNumThreads(0);
