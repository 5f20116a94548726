/**
 * The peer column: a long-lived python3 worker (bench/peer.py) timing numpy/scipy (OpenBLAS,
 * LAPACK) in the same run as our kernels. One worker per thread count, since OpenBLAS
 * fixes its thread count at start-up. Missing python3 or numpy simply means no peer column.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';

import { packageRoot } from '../native/loader.js';

export interface PeerHello {
  numpy: string;
  scipy: string | null;
  blas: string;
  ops: string[];
}

export class Peer {
  #proc: ChildProcessWithoutNullStreams;
  #lines: Interface;
  #waiters: ((line: string | null) => void)[] = [];
  #closed = false;
  hello: PeerHello | undefined;

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    this.#lines = createInterface({ input: proc.stdout });
    this.#lines.on('line', (l) => this.#waiters.shift()?.(l));
    proc.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w(null);
    });
    proc.on('error', () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w(null);
    });
  }

  /** Starts a worker (bench/peer.py unless `scriptName` names another) with `threads` BLAS threads; undefined when no usable python answers. */
  static async start(threads: number, keepEnv: boolean, scriptName = 'peer.py'): Promise<Peer | undefined> {
    const script = join(packageRoot(), 'bench', scriptName);
    if (!existsSync(script)) return undefined;
    const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
    if (!keepEnv) {
      // These force OpenBLAS onto older kernels on some machines; the peer should run its best.
      delete env['OPENBLAS_CORETYPE'];
      delete env['OPENBLAS_L2_SIZE'];
    }
    const candidates = [process.env['KFAC_PEER_PYTHON'], 'python3', '/usr/bin/python3'].filter((x): x is string => !!x);
    for (const py of candidates) {
      const proc = spawn(py, [script], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      proc.stderr.resume();
      const peer = new Peer(proc);
      const hello = await peer.call({ op: 'hello' });
      if (hello && hello['ok'] === true) {
        peer.hello = hello as unknown as PeerHello;
        return peer;
      }
      peer.close();
    }
    return undefined;
  }

  /** Sends one request; resolves to the reply, or undefined when the worker is gone. */
  call(req: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiters.push((line) => {
        if (line === null) return resolve(undefined);
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch {
          resolve(undefined);
        }
      });
      this.#proc.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  /** Median ms of a peer op, or undefined when the peer cannot run it. */
  async ms(req: Record<string, unknown>): Promise<number | undefined> {
    const r = await this.call(req);
    return r && r['ok'] === true && typeof r['ms'] === 'number' ? r['ms'] : undefined;
  }

  get name(): string {
    return this.hello?.blas ?? 'numpy';
  }

  close(): void {
    if (!this.#closed) this.#proc.stdin.end();
    this.#lines.close();
  }
}

/** Starts (lazily) and caches one peer per thread count. */
export class PeerPool {
  #peers = new Map<number, Promise<Peer | undefined>>();
  constructor(
    private readonly enabled: boolean,
    private readonly keepEnv: boolean,
  ) {}

  get(threads: number): Promise<Peer | undefined> {
    if (!this.enabled) return Promise.resolve(undefined);
    let p = this.#peers.get(threads);
    if (!p) {
      p = Peer.start(threads, this.keepEnv);
      this.#peers.set(threads, p);
    }
    return p;
  }

  async close(): Promise<void> {
    for (const p of this.#peers.values()) (await p)?.close();
  }
}
