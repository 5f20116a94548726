/**
 * The live view of a training run on stderr: on a terminal one status line redrawn after every
 * step (step/total, loss, last metric, steps/s, ETA, Newton-clip rate); every evaluation is also
 * printed as its own line, which is all a pipe or a log file gets.
 */
import type { TrainerEvent } from '../train/trainer.js';

const fmt = (v: number | undefined, d = 4) => (v === undefined || !Number.isFinite(v) ? '–' : Number(v.toPrecision(d)).toString());

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export class TrainDisplay {
  readonly tty: boolean;
  #loss = NaN;
  #metric: string = '';
  #active = false;
  #firstStepAt: number | undefined;
  #firstStep = 0;

  constructor(
    readonly label: string,
    readonly monitor: string,
    readonly stream: NodeJS.WriteStream = process.stderr,
    readonly quiet = false,
  ) {
    this.tty = !!stream.isTTY && process.env['CI'] !== 'true' && !quiet;
  }

  event(e: TrainerEvent, total: number): void {
    if (e.kind === 'step') {
      // a smoothed loss: the display should not jump with every batch
      this.#loss = Number.isFinite(this.#loss) ? 0.9 * this.#loss + 0.1 * e.loss : e.loss;
      if (this.#firstStepAt === undefined) {
        this.#firstStepAt = e.elapsedMs;
        this.#firstStep = e.step;
      }
      if (!this.tty) return;
      const done = e.step - this.#firstStep;
      const rate = done > 0 ? (done * 1000) / (e.elapsedMs - this.#firstStepAt) : NaN;
      const eta = rate > 0 ? ((total - e.step) / rate) * 1000 : NaN;
      const tel = e.optimizer as { clipRate?: number; diverged?: boolean } | undefined;
      const clip = tel?.clipRate !== undefined ? `  clip ${(100 * tel.clipRate).toFixed(0)}%` : '';
      const width = Math.max(8, Math.min(30, (this.stream.columns ?? 100) - 90));
      const filled = Math.round((width * e.step) / Math.max(1, total));
      const bar = '█'.repeat(filled) + '░'.repeat(Math.max(0, width - filled));
      const line = `${this.label}  ${bar} ${e.step}/${total}  loss ${fmt(this.#loss)}${this.#metric}  ${fmt(rate, 3)} steps/s  ETA ${formatDuration(eta)}${clip}`;
      this.stream.write(`\r\x1b[2K${line.slice(0, (this.stream.columns ?? 120) - 1)}`);
      this.#active = true;
      return;
    }
    const value = this.monitor === 'loss' ? e.loss : e.metrics[this.monitor];
    this.#metric = `  ${this.monitor} ${fmt(value)}`;
    if (this.quiet) return;
    this.clear();
    const metrics = Object.entries(e.metrics)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join('  ');
    this.stream.write(`${this.label}  step ${e.step}/${total}  eval loss ${fmt(e.loss)}  ${metrics}${e.best ? '  (best)' : ''}  [${formatDuration(e.elapsedMs)}]\n`);
  }

  clear(): void {
    if (this.#active) this.stream.write('\r\x1b[2K');
    this.#active = false;
  }
}
