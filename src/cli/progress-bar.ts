/**
 * A one-line progress bar for a terminal, redrawn in place; when output is not a terminal (CI,
 * a log file) it prints a plain line at most every few seconds instead.
 */
export class ProgressBar {
  private lastPlain = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stdout,
    private readonly width = 30,
    private readonly plainEveryMs = 3000,
  ) {}

  update(done: number, total: number, suffix: string): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const percent = `${Math.floor(fraction * 100)}`.padStart(3);
    if (this.stream.isTTY) {
      const filled = Math.round(fraction * this.width);
      const bar = '█'.repeat(filled) + '░'.repeat(this.width - filled);
      const line = `${bar} ${percent}% ${done}/${total} ${suffix}`;
      this.stream.write(`\r\x1b[2K${line.slice(0, (this.stream.columns ?? 120) - 1)}`);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    if (now - this.lastPlain >= this.plainEveryMs || done >= total) {
      this.lastPlain = now;
      this.stream.write(`${percent}% ${done}/${total} ${suffix}\n`);
    }
  }

  /** Ends the bar's line so later output starts on a fresh one. */
  finish(): void {
    if (this.drawn && this.stream.isTTY) this.stream.write('\n');
    this.drawn = false;
  }
}
