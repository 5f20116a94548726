/** A one-line live status on stderr while long work runs (only on a terminal). */

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Progress {
  #frame = 0;
  #started = Date.now();
  #active = false;
  readonly enabled: boolean;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.enabled = !!stream.isTTY && process.env['CI'] !== 'true';
    this.stream = stream;
  }
  private readonly stream: NodeJS.WriteStream;

  update(message: string): void {
    if (!this.enabled) return;
    const s = ((Date.now() - this.#started) / 1000).toFixed(0);
    const text = `${FRAMES[this.#frame++ % FRAMES.length]} ${message}  (${s}s)`;
    const width = this.stream.columns ?? 80;
    this.stream.write(`\r\x1b[2K${text.slice(0, width - 1)}`);
    this.#active = true;
  }

  done(): void {
    if (this.#active) this.stream.write('\r\x1b[2K');
    this.#active = false;
  }
}
