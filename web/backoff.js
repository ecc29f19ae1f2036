// Exponential backoff with jitter, for reconnecting to a server that is away.

export class Backoff {
  /**
   * @param {number} firstMs  delay before the first retry
   * @param {number} maxMs    the delay never grows past this
   */
  constructor(firstMs = 500, maxMs = 15000) {
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.attempt = 0;
  }

  /** The delay before the next try; each call doubles it (±20% jitter). */
  next() {
    const base = Math.min(this.maxMs, this.firstMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /** Back to the first, short delay (after a success). */
  reset() {
    this.attempt = 0;
  }
}
