// The bounce buffer and the page budget: pagemap_scan_output(), pagemap_scan_push_range(),
// pagemap_scan_backout_range(), pagemap_scan_flush_buffer() (fs/proc/task_mmu.c).
// This is the only stateful accumulator of a scan; it owns found_pages and walk_end.

import { PAGE_SIZE, type PageRegion } from '../uapi';
import type { ScanArgs } from './args';

/** PAGEMAP_WALK_SIZE >> PAGE_SHIFT: the bounce buffer holds at most 512 regions. */
export const BOUNCE_BUFFER_REGIONS = 512;

export const ENOSPC = 'ENOSPC';
/** What a walk callback returns: 0 to go on, ENOSPC to stop early, or an errno name. */
export type WalkResult = 0 | typeof ENOSPC | 'EPERM' | 'ENOMEM';

export class ScanOutput {
  /** null when vec_len == 0: no buffer at all, every output is a no-op. */
  private buf: PageRegion[] | null = null;
  private bufLen = 0;
  private index = 0;
  /** pages in every region emitted so far */
  found = 0;
  /** 0 until set by a stop or a hugetlb back-out. */
  walkEnd = 0;
  /** What was copied to the user array (vec_out), in order. */
  readonly copied: PageRegion[] = [];
  /** Remaining user capacity (arg.vec_len as the kernel decrements it). */
  vecLeft: bigint;

  constructor(private readonly args: ScanArgs) {
    this.vecLeft = args.vec_len;
    // pagemap_scan_init_bounce_buffer()
    if (args.vec_len !== 0n) {
      this.bufLen = Number(args.vec_len < BigInt(BOUNCE_BUFFER_REGIONS) ? args.vec_len : BigInt(BOUNCE_BUFFER_REGIONS));
      this.buf = [{ start: 0, end: 0, categories: 0 }];
    }
  }

  get hasBuffer(): boolean {
    return this.buf !== null;
  }

  /**
   * pagemap_scan_output(): emit [addr, end) with categories; returns the end actually emitted
   * (cut by max_pages, or addr when nothing fit) and ENOSPC when the walk must stop.
   */
  output(categories: number, addr: number, end: number): { end: number; ret: 0 | typeof ENOSPC } {
    if (!this.buf) return { end, ret: 0 };
    categories &= this.args.return_mask;
    let nPages = (end - addr) / PAGE_SIZE;
    let ret: 0 | typeof ENOSPC = 0;
    const total = this.found + nPages;
    if (total > this.args.max_pages) {
      const tooMuch = total - this.args.max_pages;
      end -= tooMuch * PAGE_SIZE;
      nPages -= tooMuch;
      ret = ENOSPC;
    }
    if (!this.pushRange(categories, addr, end)) {
      end = addr;
      nPages = 0;
      ret = ENOSPC;
    }
    this.found += nPages;
    if (ret) this.walkEnd = end;
    return { end, ret };
  }

  /** pagemap_scan_push_range(): extend the current region or take the next slot. */
  private pushRange(categories: number, addr: number, end: number): boolean {
    const buf = this.buf!;
    let cur = buf[this.index];
    if (addr === cur.end && categories === cur.categories) {
      cur.end = end;
      return true;
    }
    if (cur.end) {
      if (this.index >= this.bufLen - 1) return false;
      this.index++;
      cur = buf[this.index] ??= { start: 0, end: 0, categories: 0 };
    }
    cur.start = addr;
    cur.end = end;
    cur.categories = categories;
    return true;
  }

  /** pagemap_scan_backout_range(): undo the last output of [addr, end). */
  backoutRange(addr: number, end: number): void {
    if (!this.buf) return;
    const cur = this.buf[this.index];
    if (cur.start !== addr) cur.end = addr;
    else cur.start = cur.end = 0;
    this.found -= (end - addr) / PAGE_SIZE;
  }

  /** pagemap_scan_flush_buffer(): copy the filled slots out; returns how many. */
  flush(): number {
    const buf = this.buf;
    if (!buf) return 0;
    let n = this.index;
    if (buf[n].end !== buf[n].start) n++;
    if (!n) return 0;
    for (let i = 0; i < n; i++) this.copied.push({ ...buf[i] });
    this.vecLeft -= BigInt(n);
    this.index = 0;
    if (BigInt(this.bufLen) > this.vecLeft) this.bufLen = Number(this.vecLeft);
    // Only start and end are reset: the stale categories of slot 0 stay, as in the kernel.
    buf[0].start = buf[0].end = 0;
    return n;
  }
}
