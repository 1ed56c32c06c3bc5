// hugetlb mappings (mm/hugetlb.c): 2 MiB pages are entries of a PMD table, 1 GiB pages entries
// of a PUD table. A slot is a hole when that table does not exist, else an entry that may be none.

import { PUD_SIZE } from '../uapi';
import { roundDown, type Level, type MmStruct } from './mm';
import { RunMap } from './runmap';
import { HUGE_LEAF, HUGE_MARKER_UFFD_WP, PTE_FILE, PTE_UFFD_WP, TABLE, isHugeLeaf } from './pte';
import { handleUserfault, userfaultfdWpAsync, userfaultfdWpUseMarkers, type UffdCtx } from './userfaultfd';
import { hugePageSize, userfaultfdWp, type Vma } from './vma';
import { UFFD_REGISTER_MODES } from '../uapi';
import { KernelHang } from './hang';

/**
 * The hugetlbfs file behind a MAP_SHARED hugetlb mapping (each mmap gets its own): the huge pages
 * in its page cache and the reservations not yet consumed (resv_map), both by huge-page index.
 * They outlive a partial munmap; only the file's last mapping going, or a hole punch, frees them.
 */
export class HugetlbFile {
  readonly cached = new RunMap();
  readonly reserved = new RunMap();

  constructor(pages: number) {
    this.reserved.set(0, pages, 1);
  }

  /** Pages this file holds from the pool: cached or reserved. */
  charged(): number {
    let n = 0;
    for (const run of this.cached.runs(0, Number.MAX_SAFE_INTEGER)) if (run.value !== undefined) n += run.end - run.start;
    for (const run of this.reserved.runs(0, Number.MAX_SAFE_INTEGER)) {
      if (run.value === undefined) continue;
      for (const seg of this.cached.segments(run.start, run.end)) if (seg.value === undefined) n += seg.end - seg.start;
    }
    return n;
  }

  /**
   * hugetlbfs_punch_hole() -> remove_inode_hugepages(): the pages of [lo, hi) go back to the pool
   * with their reservations; an index without a page keeps its reservation ("the region/reserve
   * map for ranges without associated pages are not modified").
   */
  punch(lo: number, hi: number): void {
    for (const seg of [...this.cached.segments(lo, hi)]) if (seg.value !== undefined) this.reserved.set(seg.start, seg.end, undefined);
    this.cached.set(lo, hi, undefined);
  }
}

/** A fault that found no huge page for it (no reservation, pool empty): VM_FAULT_SIGBUS. */
export class HugetlbNoPage extends Error {}

/** The index in its file of the huge page at addr of a shared hugetlb VMA. */
const fileIndex = (vma: Vma, addr: number): number => (addr - vma.fileBase!) / hugePageSize(vma);

/** The level holding a hugetlb VMA's entries, and the level whose TABLE makes them exist. */
export function hugetlbLevels(mm: MmStruct, vma: Vma): { entries: Level; tables: Level; size: number } {
  const size = hugePageSize(vma);
  return size === PUD_SIZE ? { entries: mm.pud, tables: mm.p4d, size } : { entries: mm.pmd, tables: mm.pud, size };
}

/** hugetlb_walk() finds a table for the slot of addr. */
export function hugetlbTableExists(mm: MmStruct, vma: Vma, addr: number): boolean {
  const { tables } = hugetlbLevels(mm, vma);
  return tables.get(addr) === TABLE && (tables === mm.p4d || mm.p4d.get(addr) === TABLE);
}

/** huge_pte_alloc(): the tables above the slots of [start, end). */
function hugetlbAllocTables(mm: MmStruct, vma: Vma, start: number, end: number): void {
  if (hugePageSize(vma) === PUD_SIZE) mm.p4d.set(start, end, TABLE);
  else mm.allocPmdTables(start, end);
}

/** The entry of a present hugetlb page: anonymous for private mappings, page cache for shared. */
const presentEntry = (vma: Vma): number => HUGE_LEAF | (vma.kind === 'hugetlb-shared' ? PTE_FILE : 0);

/**
 * hugetlb_fault() on the page of addr: none (or a hole) allocates a page, even for a read; a
 * uffd-wp marker gives the page with the bit; a write resolves the bit in async mode.
 *
 * hugetlb_no_page() keeps a marker's uffd-wp bit whatever the VMA's registration is now ("if this
 * pte was previously wr-protected, keep it wr-protected even if populated"), and hugetlb_fault()
 * resolves the bit only while userfaultfd_wp(vma). A write to a page with the bit in a VMA no
 * longer uffd-wp (re-registered MISSING or MINOR only, or its uffd closed after that) reaches
 * hugetlb_wp(), which returns 0 at once for a uffd-wp pte ("never handle CoW for uffd-wp protected
 * pages"): the fault "succeeds", the pte stays read-only, and the access faults again for ever.
 */
export function hugetlbFault(
  mm: MmStruct,
  vma: Vma,
  ctx: UffdCtx | null,
  addr: number,
  write: boolean,
  poolHasFreePage: () => boolean,
): void {
  const { entries, size } = hugetlbLevels(mm, vma);
  const slot = roundDown(addr, size);
  let entry = hugetlbTableExists(mm, vma, slot) ? entries.get(slot) : undefined;
  if (entry === undefined || entry === HUGE_MARKER_UFFD_WP) {
    hugetlbNoPage(vma, ctx, slot, poolHasFreePage);
    entry = presentEntry(vma) | (entry === HUGE_MARKER_UFFD_WP ? PTE_UFFD_WP : 0);
  }
  if (write && entry & PTE_UFFD_WP) {
    if (!userfaultfdWp(vma)) {
      hugetlbAllocTables(mm, vma, slot, slot + size);
      entries.set(slot, slot + size, entry); // hugetlb_no_page() mapped it before hugetlb_wp()
      throw new KernelHang(
        'fault-loop',
        'hugetlb_wp() never handles CoW for a uffd-wp pte, and hugetlb_fault() resolves the bit only while the VMA is uffd-wp: the write faults again for ever',
      );
    }
    if (!userfaultfdWpAsync(vma, ctx)) handleUserfault(ctx, 'WP');
    entry &= ~PTE_UFFD_WP;
  }
  hugetlbAllocTables(mm, vma, slot, slot + size);
  entries.set(slot, slot + size, entry);
}

/**
 * hugetlb_no_page(): a page found in the file's page cache goes to a MINOR reader; a new one to a
 * MISSING reader, and is allocated from the page's reservation or else a free page of the pool
 * (none: SIGBUS). A private mapping's pages are never in the page cache, and always reserved (a
 * freed anonymous page gives its reservation back: __unmap_hugepage_range()).
 */
function hugetlbNoPage(vma: Vma, ctx: UffdCtx | null, slot: number, poolHasFreePage: () => boolean): void {
  const file = vma.hugetlbFile;
  const index = file ? fileIndex(vma, slot) : 0;
  if (file && file.cached.get(index) !== undefined) {
    if (vma.uffd & UFFD_REGISTER_MODES.MINOR) handleUserfault(ctx, 'MINOR');
    return;
  }
  if (vma.uffd & UFFD_REGISTER_MODES.MISSING) handleUserfault(ctx, 'MISSING');
  if (!file) return;
  if (file.reserved.get(index) === undefined && !poolHasFreePage()) throw new HugetlbNoPage();
  file.cached.set(index, index + 1, 1);
}

/**
 * hugetlb_change_protection() with the uffd-wp flags over every huge page [start, end) reaches:
 * protecting gives present pages the bit and none slots (allocating missing tables) a marker;
 * un-protecting clears the bits and drops the markers.
 */
export function hugetlbChangeProtection(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, start: number, end: number, enable: boolean): void {
  const { entries, size } = hugetlbLevels(mm, vma);
  // Every huge page the range reaches (hugetlb_walk() of each address): userfaultfd_clear_vma()
  // un-protects a whole page before its split inside it fails.
  start = roundDown(start, size);
  end = roundDown(end + size - 1, size);
  if (enable && userfaultfdWpUseMarkers(vma, ctx)) {
    hugetlbAllocTables(mm, vma, start, end);
    for (const seg of [...entries.map.segments(entries.index(start), entries.index(end))]) {
      if (seg.value === undefined) entries.map.set(seg.start, seg.end, HUGE_MARKER_UFFD_WP);
    }
  }
  entries.map.update(entries.index(start), entries.index(end), (e) => {
    if (e === HUGE_MARKER_UFFD_WP) return enable ? e : undefined;
    if (!isHugeLeaf(e)) return e;
    return enable ? e | PTE_UFFD_WP : e & ~PTE_UFFD_WP;
  });
}

/**
 * __unmap_hugepage_range() over [start, end): entries become none, except that a write-protected
 * one leaves a uffd-wp marker unless the markers are dropped too (munmap).
 */
export function hugetlbZap(mm: MmStruct, vma: Vma, start: number, end: number, dropMarkers: boolean): void {
  const { entries } = hugetlbLevels(mm, vma);
  entries.map.update(entries.index(start), entries.index(end), (e) => {
    const protectedEntry = e === HUGE_MARKER_UFFD_WP || (isHugeLeaf(e) && (e & PTE_UFFD_WP) !== 0);
    return protectedEntry && !dropMarkers ? HUGE_MARKER_UFFD_WP : undefined;
  });
}


