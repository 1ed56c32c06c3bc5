// struct mm_struct: the VMA list and a 4-level page table (x86-64, 4 KiB pages).
//
//   p4d   one entry per 512 GiB: TABLE when a PUD table exists
//   pud   one entry per 1 GiB:   TABLE (a PMD table exists) or a 1 GiB hugetlb entry
//   pmd   one entry per 2 MiB:   TABLE (a PTE table exists), a THP, or a 2 MiB hugetlb entry
//   pte   one entry per 4 KiB:   non-none PTEs only (absent = pte_none)
//
// Every level is a RunMap keyed by the index of its unit, so a mapping of any size costs as
// many runs as it has distinct states. Invariant: an entry exists at a level only where the
// level above holds TABLE (pte entries only where pmd is TABLE).

import { PAGE_SHIFT, PMD_SIZE, PUD_SIZE } from '../uapi';
import { RunMap } from './runmap';
import { isHugeLeaf, TABLE } from './pte';
import { DEFAULT_PROFILE, PROFILES, type KernelProfile } from '../profiles';
import { anonVmaCompatible, canMerge, type Vma } from './vma';

let nextAnonVma = 1;

export const P4D_SIZE = 512 * PUD_SIZE;
const PMD_SHIFT = 21;
const PUD_SHIFT = 30;
const P4D_SHIFT = 39;

export const pageIndex = (addr: number): number => addr / 4096;
export const pageAddr = (index: number): number => index * 4096;
export const roundDown = (addr: number, size: number): number => Math.floor(addr / size) * size;
export const isAligned = (addr: number, size: number): boolean => addr % size === 0;
export const roundUp = (addr: number, size: number): number => Math.ceil(addr / size) * size;
/** pmd_addr_end() and friends: the next boundary of `size` after addr, capped at end. */
export const addrEnd = (addr: number, end: number, size: number): number =>
  Math.min(roundDown(addr, size) + size, end);

/** One level of the page table: its unit size and its map. */
export class Level {
  readonly map = new RunMap();
  constructor(readonly shift: number) {}
  get size(): number {
    return 2 ** this.shift;
  }
  index(addr: number): number {
    return Math.floor(addr / this.size);
  }
  get(addr: number): number | undefined {
    return this.map.get(this.index(addr));
  }
  /** Set the entries of every unit intersecting [start, end). */
  set(start: number, end: number, value: number | undefined): void {
    this.map.set(this.index(start), Math.ceil(end / this.size), value);
  }
}

export class MmStruct {
  /** Which kernel's behaviour this mm follows where kernels differ. */
  constructor(readonly profile: KernelProfile = PROFILES[DEFAULT_PROFILE]) {}

  /** The read_ahead_kb of the disk new disk-file mappings are on, in pages (file_ra_state_init()). */
  raPages?: number;

  /** Sorted by start; never overlapping. */
  vmas: Vma[] = [];
  readonly pte = new Level(PAGE_SHIFT);
  readonly pmd = new Level(PMD_SHIFT);
  readonly pud = new Level(PUD_SHIFT);
  readonly p4d = new Level(P4D_SHIFT);
  /**
   * Pages whose contents are not all zero (by page index; 1 = written). Page content matters
   * where the kernel looks at it: splitting a large folio maps zero-filled pages to the zero page.
   */
  readonly data = new RunMap();

  /** find_vma(): the first VMA that ends above addr. */
  findVmaIndex(addr: number): number {
    let lo = 0;
    let hi = this.vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vmas[mid].end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The VMA containing addr (vma_lookup()). */
  vmaLookup(addr: number): Vma | undefined {
    const vma = this.vmas[this.findVmaIndex(addr)];
    return vma && vma.start <= addr ? vma : undefined;
  }

  /** VMAs intersecting [start, end), in order (for_each_vma_range()). */
  vmasIn(start: number, end: number): Vma[] {
    const out: Vma[] = [];
    for (let i = this.findVmaIndex(start); i < this.vmas.length && this.vmas[i].start < end; i++) {
      out.push(this.vmas[i]);
    }
    return out;
  }

  /** True when some VMA intersects [start, end). */
  anyVmaIn(start: number, end: number): boolean {
    const vma = this.vmas[this.findVmaIndex(start)];
    return vma !== undefined && vma.start < end;
  }

  /** True when [start, end) is entirely covered by VMAs, without gaps. */
  fullyMapped(start: number, end: number): boolean {
    let pos = start;
    for (const vma of this.vmasIn(start, end)) {
      if (vma.start > pos) return false;
      pos = vma.end;
    }
    return pos >= end;
  }

  /**
   * Split VMAs so that start and end fall on VMA boundaries (split_vma()); returns the VMAs
   * inside [start, end).
   */
  splitAt(start: number, end: number): Vma[] {
    for (const addr of [start, end]) {
      const i = this.findVmaIndex(addr);
      const vma = this.vmas[i];
      if (vma && vma.start < addr && addr < vma.end) {
        this.vmas.splice(i, 1, { ...vma, end: addr }, { ...vma, start: addr });
      }
    }
    return this.vmasIn(start, end);
  }

  /**
   * vma_merge() of the new or changed VMA [start, end) with its neighbours: the next one if it
   * starts at end, the previous one if it ends at start. Only those two: VMAs further away that
   * could merge but were not changed stay apart, as in the kernel.
   */
  mergeAround(start: number, end: number): void {
    this.mergeAt(end);
    this.mergeAt(start);
  }

  /** Merge the VMA ending at addr with the one starting there, if they are compatible. */
  private mergeAt(addr: number): void {
    const i = this.findVmaIndex(addr) - 1;
    const prev = this.vmas[i];
    const next = this.vmas[i + 1];
    if (!prev || !next || prev.end !== addr || next.start !== addr || !canMerge(prev, next)) return;
    const merged = { ...prev, end: next.end, softDirty: prev.softDirty || next.softDirty, anonVma: prev.anonVma ?? next.anonVma };
    this.vmas.splice(i, 2, merged);
  }

  insertVma(vma: Vma): void {
    this.vmas.splice(this.findVmaIndex(vma.start), 0, vma);
    this.mergeAround(vma.start, vma.end);
    // A new or expanded VMA is soft-dirty as a whole (mmap_region()).
    if (this.profile.softDirty) for (const v of this.vmasIn(vma.start, vma.end)) v.softDirty = true;
  }

  // ---- page-table pages ----------------------------------------------------------------

  /**
   * anon_vma_prepare(): the VMA of addr gets an anon_vma, shared with a compatible neighbour that
   * has one (find_mergeable_anon_vma(): the next VMA first, then the previous), else a new one.
   */
  anonVmaPrepare(vma: Vma): void {
    if (vma.anonVma !== null) return;
    const i = this.vmas.indexOf(vma);
    const next = this.vmas[i + 1];
    const prev = this.vmas[i - 1];
    if (next && next.anonVma !== null && anonVmaCompatible(vma, next)) vma.anonVma = next.anonVma;
    else if (prev && prev.anonVma !== null && anonVmaCompatible(prev, vma)) vma.anonVma = prev.anonVma;
    else vma.anonVma = nextAnonVma++;
  }

  /** Allocate the PUD and PMD tables covering [start, end) (pud_alloc(), pmd_alloc()). */
  allocPmdTables(start: number, end: number): void {
    this.p4d.set(start, end, TABLE);
    fillAbsent(this.pud, start, end, TABLE);
  }

  /**
   * Allocate PTE tables for every 2 MiB block of [start, end) that has none (pte_alloc());
   * blocks holding a huge leaf are left alone.
   */
  allocPteTables(start: number, end: number): void {
    this.allocPmdTables(start, end);
    fillAbsent(this.pmd, start, end, TABLE);
  }

  /** Drop every entry below and at `level` for [start, end) (the tables are freed). */
  freeTables(level: Level, start: number, end: number): void {
    const levels = [this.p4d, this.pud, this.pmd, this.pte];
    for (const l of levels.slice(levels.indexOf(level))) l.set(start, end, undefined);
  }

  /**
   * free_pgtables() after the VMAs of [start, end) were removed: a table whose span no
   * remaining VMA intersects is freed (the floor/ceiling rule of free_pgd_range()).
   */
  freePgtables(start: number, end: number): void {
    const prev = this.vmas[this.findVmaIndex(start) - 1];
    const next = this.vmas[this.findVmaIndex(end)];
    const floor = prev ? prev.end : 0;
    const ceiling = next ? next.start : Infinity;
    // Each level: the table at level L covers the unit of the level above.
    for (const [level, span] of [
      [this.pmd, PMD_SIZE],
      [this.pud, PUD_SIZE],
      [this.p4d, P4D_SIZE],
    ] as const) {
      let lo = roundDown(start, span);
      let hi = roundUp(end, span);
      if (lo < floor) lo += span;
      if (hi > ceiling) hi -= span;
      if (lo < hi) this.freeTables(level, lo, hi);
    }
  }

  /** Start addresses of the 2 MiB blocks of [start, end) mapped by a huge PMD leaf. */
  *hugeLeavesIn(start: number, end: number): Generator<number> {
    for (const run of [...this.pmd.map.runs(this.pmd.index(start), Math.ceil(end / PMD_SIZE))]) {
      if (!isHugeLeaf(run.value)) continue;
      for (let b = run.start; b < run.end; b++) yield b * PMD_SIZE;
    }
  }

  /** Clear the PTE entries of [start, end) (the slots become pte_none). */
  clearPtes(start: number, end: number): void {
    this.pte.set(start, end, undefined);
  }
}


/** Set every absent entry of level in [start, end) to value; present entries stay. */
function fillAbsent(level: Level, start: number, end: number, value: number): void {
  const lo = level.index(start);
  const hi = Math.ceil(end / level.size);
  for (const seg of [...level.map.segments(lo, hi)]) {
    if (seg.value === undefined) level.map.set(seg.start, seg.end, value);
  }
}
