// An interval map over integer keys (page or block numbers): disjoint runs [start, end) with a
// value, kept sorted. Keys not covered by any run are "absent". Adjacent runs with equal values
// are always merged, so the number of runs is the number of distinct page runs.
//
// Invariants: starts[i] < ends[i] <= starts[i+1]; if ends[i] == starts[i+1] then
// values[i] !== values[i+1].  Values are small integers (encoded entries), compared with ===.

export interface Run {
  start: number;
  end: number;
  value: number;
}

export class RunMap {
  private starts: number[] = [];
  private ends: number[] = [];
  private values: number[] = [];

  get runCount(): number {
    return this.starts.length;
  }

  /** Index of the first run whose end is > key. */
  private firstEndingAfter(key: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid] <= key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The value at key, or undefined when absent. */
  get(key: number): number | undefined {
    const i = this.firstEndingAfter(key);
    return i < this.starts.length && this.starts[i] <= key ? this.values[i] : undefined;
  }

  /** The run containing key, or the gap around it as { value: undefined }. */
  runAt(key: number): { start: number; end: number; value: number | undefined } {
    const i = this.firstEndingAfter(key);
    if (i < this.starts.length && this.starts[i] <= key) {
      return { start: this.starts[i], end: this.ends[i], value: this.values[i] };
    }
    const start = i > 0 ? this.ends[i - 1] : -Infinity;
    const end = i < this.starts.length ? this.starts[i] : Infinity;
    return { start, end, value: undefined };
  }

  /**
   * Runs and gaps covering [start, end), clipped to it, in order. A gap is reported with
   * value undefined.
   */
  *segments(start: number, end: number): Generator<{ start: number; end: number; value: number | undefined }> {
    let pos = start;
    let i = this.firstEndingAfter(start);
    while (pos < end) {
      if (i >= this.starts.length || this.starts[i] >= end) {
        yield { start: pos, end, value: undefined };
        return;
      }
      if (this.starts[i] > pos) {
        yield { start: pos, end: this.starts[i], value: undefined };
        pos = this.starts[i];
      }
      const e = Math.min(this.ends[i], end);
      yield { start: pos, end: e, value: this.values[i] };
      pos = e;
      i++;
    }
  }

  /** Present runs intersecting [start, end), clipped. */
  *runs(start: number, end: number): Generator<Run> {
    for (const s of this.segments(start, end)) {
      if (s.value !== undefined) yield s as Run;
    }
  }

  /** True when some key in [start, end) is present. */
  any(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    return i < this.starts.length && this.starts[i] < end;
  }

  /** Set [start, end) to value (undefined: make absent). */
  set(start: number, end: number, value: number | undefined): void {
    if (start >= end) return;
    const i = this.firstEndingAfter(start);
    // Collect the runs overlapping [start, end) and the parts of them that stay.
    let j = i;
    while (j < this.starts.length && this.starts[j] < end) j++;
    const newStarts: number[] = [];
    const newEnds: number[] = [];
    const newValues: number[] = [];
    if (i < j && this.starts[i] < start) {
      newStarts.push(this.starts[i]);
      newEnds.push(start);
      newValues.push(this.values[i]);
    }
    if (value !== undefined) {
      newStarts.push(start);
      newEnds.push(end);
      newValues.push(value);
    }
    if (i < j && this.ends[j - 1] > end) {
      newStarts.push(end);
      newEnds.push(this.ends[j - 1]);
      newValues.push(this.values[j - 1]);
    }
    this.starts.splice(i, j - i, ...newStarts);
    this.ends.splice(i, j - i, ...newEnds);
    this.values.splice(i, j - i, ...newValues);
    this.coalesce(Math.max(0, i - 1), i + newStarts.length + 1);
  }

  /** Replace each present value v in [start, end) with fn(v) (undefined: make absent). */
  update(start: number, end: number, fn: (value: number) => number | undefined): void {
    const changes: { start: number; end: number; value: number | undefined }[] = [];
    for (const r of this.runs(start, end)) {
      const v = fn(r.value);
      if (v !== r.value) changes.push({ start: r.start, end: r.end, value: v });
    }
    for (const c of changes) this.set(c.start, c.end, c.value);
  }

  /** Merge adjacent equal runs between indexes lo and hi (inclusive-ish window). */
  private coalesce(lo: number, hi: number): void {
    hi = Math.min(hi, this.starts.length - 1);
    for (let k = hi; k > lo; k--) {
      if (k < this.starts.length && this.ends[k - 1] === this.starts[k] && this.values[k - 1] === this.values[k]) {
        this.ends[k - 1] = this.ends[k];
        this.starts.splice(k, 1);
        this.ends.splice(k, 1);
        this.values.splice(k, 1);
      }
    }
  }

  /** Every run, for tests and dumps. */
  all(): Run[] {
    return this.starts.map((s, i) => ({ start: s, end: this.ends[i], value: this.values[i] }));
  }
}
