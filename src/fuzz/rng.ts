// A small seeded PRNG for the random program generator.
//
// Choice: mulberry32. It is five lines, has one 32-bit word of state (so a seed IS the whole state
// and "seed S" reproduces a program exactly, with no seeding procedure to get wrong), passes the
// usual statistical batteries well enough for picking test inputs, and neighbouring seeds give
// unrelated streams thanks to its output mixing. Its weaknesses (2^32 period, not every 32-bit
// value reachable) do not matter here: one program draws at most a few thousand numbers, and we
// need reproducibility and independence between seeds, not cryptographic or simulation-grade
// quality. xoshiro128** would be statistically stronger but needs a seeding step (splitmix) and
// four words of state for no benefit at this scale. No dependency is added either way.

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer (mulberry32). */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** One of the items, by weight: [[weight, item], ...]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((a, [w]) => a + w, 0);
    let x = this.next() * total;
    for (const [w, item] of items) {
      if (x < w) return item;
      x -= w;
    }
    return items[items.length - 1]![1];
  }

  /** A random subset of the bits of `mask`, each kept with probability p. */
  bits(mask: number, p = 0.5): number {
    let out = 0;
    for (let bit = 0; bit < 31; bit++) if (mask & (1 << bit) && this.chance(p)) out |= 1 << bit;
    return out;
  }
}
