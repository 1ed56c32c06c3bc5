// File-backed memory: the page cache of each file (struct address_space) and the faults of
// file and shmem VMAs (mm/filemap.c, mm/shmem.c, do_fault() in mm/memory.c). A disk file's folios,
// readahead, fault-around and reclaim are in readahead.ts; the entry points here dispatch to it.

import { PAGE_SIZE, PMD_SIZE } from '../uapi';
import { NotModelled } from '../errors';
import { roundDown, type MmStruct } from './mm';
import { RunMap } from './runmap';
import { HUGE_LEAF, PTE_FILE, PTE_MARKER_UFFD_WP, PTE_PRESENT, PTE_SWAP, PTE_UFFD_WP, isHugeLeaf, isUffdWpMarker, ptePresent, pteKind, type Pte } from './pte';
import { userfaultfdWp, type Vma } from './vma';
import { handleUserfault, type UffdCtx } from './userfaultfd';
import { UFFD_REGISTER_MODES } from '../uapi';
import { diskColdOrPageout, diskFileFault, diskPunchHole, FileRaState, forcePageCacheRa, markFolioDirty } from './readahead';

/** A page of a file is in the page cache, or (shmem only) swapped out. */
export const CACHED = 1;
export const SWAPPED_OUT = 2;

let nextMappingId = 1;

/** struct address_space: one file (a regular file, a memfd, or the object of a shared-anon mmap). */
export class AddressSpace {
  readonly id = nextMappingId++;
  /**
   * By page offset: CACHED or SWAPPED_OUT (shmem), or folio values (a disk file: order,
   * PG_readahead, PG_dirty, see readahead.ts); absent pages are holes of the file.
   */
  readonly cache = new RunMap();
  /** shmem pages written through a shared mapping (a disk file keeps PG_dirty in its folios). */
  readonly dirty = new RunMap();
  /** file->f_ra.mmap_miss: up on cold faults, down on hits; read-around stops past 100. */
  mmapMiss = 0;
  /** file->f_ra: the readahead window of a disk file (readahead.ts). */
  readonly ra = new FileRaState();
  constructor(
    /** shmem (tmpfs, memfd, MAP_SHARED|MAP_ANONYMOUS) rather than a disk file. */
    readonly shmem: boolean,
    readonly sizePages: number,
  ) {}

  /**
   * Pages that belong to a PMD-size folio (made by collapse_file()), by page offset: each such
   * folio covers an aligned 512 pages, all CACHED. Every other cached page is a small folio.
   */
  readonly huge = new RunMap();

  isCached(off: number): boolean {
    return this.cache.get(off) === CACHED;
  }

  /** The page at off is part of a PMD-size folio (folio_test_pmd_mappable()). */
  isHugeFolio(off: number): boolean {
    return this.huge.get(off) !== undefined;
  }

  /** The 512 pages from start (aligned) are now one PMD-size folio. */
  setHugeFolio(start: number): void {
    this.huge.set(start, start + HPAGE_PMD_NR, 1);
  }

  /** split_folio() of the huge folio holding page off: its pages become small folios. */
  splitHugeFolio(off: number): void {
    const start = roundDown(off, HPAGE_PMD_NR);
    this.huge.set(start, start + HPAGE_PMD_NR, undefined);
  }

  /** The first page of each huge folio that has a page in [start, end). */
  hugeFoliosIn(start: number, end: number): number[] {
    const out: number[] = [];
    for (const run of this.huge.runs(start, end)) {
      for (let f = roundDown(run.start, HPAGE_PMD_NR); f < run.end; f += HPAGE_PMD_NR) out.push(f);
    }
    return out;
  }

  /** Read [start, end) into the cache (pages already cached stay as they are). */
  readahead(start: number, end: number): void {
    for (const seg of [...this.cache.segments(start, Math.min(end, this.sizePages))]) {
      if (seg.value === undefined) this.cache.set(seg.start, seg.end, CACHED);
    }
  }
}

/** fault_around_bytes = 64 KiB. */
export const FAULT_AROUND_PAGES = 16;
/** Pages in a PMD-size folio. */
const HPAGE_PMD_NR = PMD_SIZE / PAGE_SIZE;

export const isSharedMapping = (vma: Vma): boolean =>
  vma.kind === 'file-shared' || vma.kind === 'memfd-shared' || vma.kind === 'shared-anon';

/** The page offset in its file of the page at addr. */
export const pgoff = (vma: Vma, addr: number): number => (addr - vma.fileBase!) / PAGE_SIZE;

/**
 * A cold shmem page: shmem_fault() allocates it, nothing around it. (Disk files read ahead:
 * do_sync_mmap_readahead() in readahead.ts.)
 */
function syncReadahead(vma: Vma, off: number): void {
  vma.mapping!.readahead(off, off + 1);
}

/** A page found cached by filemap_fault(): do_async_mmap_readahead() lowers mmap_miss. */
function cacheHit(vma: Vma): void {
  const m = vma.mapping!;
  if (m.mmapMiss > 0) m.mmapMiss--;
}

/** should_fault_around(): not in uffd-wp or minor VMAs. */
function shouldFaultAround(vma: Vma): boolean {
  return !(vma.uffd & (UFFD_REGISTER_MODES.WP | UFFD_REGISTER_MODES.MINOR));
}

/**
 * do_fault_around() -> filemap_map_pages(): map the cached pages of a 64 KiB window (aligned, but
 * moved up to start no earlier than the VMA and the 2 MiB block) into none slots; each mapped
 * page lowers mmap_miss. Returns whether the page at addr got mapped.
 */
function doFaultAround(mm: MmStruct, vma: Vma, addr: number): boolean {
  const window = FAULT_AROUND_PAGES * PAGE_SIZE;
  const m = vma.mapping!;
  const block = roundDown(addr, PMD_SIZE);
  let from = Math.max(roundDown(addr, window), vma.start, block);
  let to = Math.min(from + window, vma.end, block + PMD_SIZE, vma.fileBase! + m.sizePages * PAGE_SIZE);
  // filemap_map_folio_range(): a large folio wholly inside the VMA and one PMD is mapped whole.
  const huge = hugeFolioBlock(vma, addr);
  if (huge !== null) [from, to] = [huge, huge + PMD_SIZE];
  mm.allocPteTables(from, to);
  let mapped = 0;
  for (const seg of [...m.cache.runs(pgoff(vma, from), pgoff(vma, to))]) {
    if (seg.value !== CACHED) continue;
    const lo = vma.fileBase! + seg.start * PAGE_SIZE;
    const hi = vma.fileBase! + seg.end * PAGE_SIZE;
    for (const slot of [...mm.pte.map.segments(mm.pte.index(lo), mm.pte.index(hi))]) {
      if (slot.value !== undefined) continue;
      mm.pte.map.set(slot.start, slot.end, PTE_PRESENT | PTE_FILE);
      mapped += slot.end - slot.start;
    }
  }
  m.mmapMiss = Math.max(0, m.mmapMiss - mapped);
  return mm.pte.get(addr) !== undefined;
}

/**
 * Where the PMD-size folio holding the page at addr could be mapped whole: its block, when it lies
 * wholly inside the VMA and inside one PMD (folio_within_vma(), thp_vma_suitable_order()).
 */
function hugeFolioBlock(vma: Vma, addr: number): number | null {
  const off = pgoff(vma, addr);
  if (!vma.mapping!.isHugeFolio(off)) return null;
  const block = vma.fileBase! + roundDown(off, HPAGE_PMD_NR) * PAGE_SIZE;
  if (block % PMD_SIZE !== 0 || block < vma.start || block + PMD_SIZE > vma.end) return null;
  return block;
}

/** do_set_pmd(): map the PMD-size folio of addr by a PMD; never in a VM_NOHUGEPAGE VMA. */
function doSetPmd(mm: MmStruct, vma: Vma, addr: number): boolean {
  const block = hugeFolioBlock(vma, addr);
  if (block === null || vma.thp === 'nohugepage') return false;
  mm.allocPmdTables(block, block + PMD_SIZE);
  mm.pmd.set(block, block + PMD_SIZE, HUGE_LEAF | PTE_FILE);
  return true;
}

/**
 * finish_fault() of a shmem VMA not registered with userfaultfd maps a whole large folio at once
 * when every slot for it is none; otherwise (needs_fallback) the faulting page only.
 */
function finishFaultWholeFolio(mm: MmStruct, vma: Vma, addr: number): boolean {
  const block = hugeFolioBlock(vma, addr);
  if (block === null || vma.uffd !== 0 || !vma.mapping!.shmem) return false;
  if (mm.pte.map.any(mm.pte.index(block), mm.pte.index(block + PMD_SIZE))) return false;
  mm.pte.set(block, block + PMD_SIZE, PTE_PRESENT | PTE_FILE);
  return true;
}

/**
 * do_fault() for one page of a file or shmem VMA whose PTE is none or a uffd-wp marker
 * (do_read_fault(), do_cow_fault(), do_shared_fault()), and do_wp_page() for a present one.
 * `resolve` is asked when a write meets a uffd-wp bit (async mode resolves it, else it blocks).
 */
export function doFileFault(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, addr: number, write: boolean, resolve: () => void): void {
  if (!vma.mapping) throw new NotModelled(`faults in ${vma.kind} memory are not modelled yet`);
  const off = pgoff(vma, addr);
  if (off >= vma.mapping.sizePages) throw new NotModelled('a fault beyond the end of the file (SIGBUS) is not modelled yet');
  let pte = mm.pte.get(addr);
  // pte_marker_handle_uffd_wp(): a leftover marker in a VMA no longer uffd-wp is cleared, and
  // the fault retried on the none slot.
  if (pte !== undefined && isUffdWpMarker(pte) && !userfaultfdWp(vma)) {
    mm.pte.set(addr, addr + PAGE_SIZE, undefined);
    pte = undefined;
  }
  if (pte !== undefined && pteKind(pte) === PTE_SWAP) {
    throw new NotModelled('faults on swap entries of a private file mapping are not modelled yet');
  }
  const marker = pte !== undefined && isUffdWpMarker(pte);
  // A disk file: its folios, readahead and fault-around are in readahead.ts.
  if (!vma.mapping.shmem && (pte === undefined || marker)) {
    if (vma.uffd & UFFD_REGISTER_MODES.MISSING) {
      mm.allocPteTables(addr, addr + PAGE_SIZE);
      handleUserfault(ctx, 'MISSING');
    }
    return diskFileFault(mm, vma, addr, write, marker ? PTE_UFFD_WP : 0, resolve);
  }
  // No page table yet over a PMD-size folio: filemap_map_pmd() (fault-around) or finish_fault()
  // maps it by a PMD, in any VMA (uffd-registered too); a private write copies one page instead.
  if (pte === undefined && mm.pmd.get(addr) === undefined && (!write || isSharedMapping(vma)) && doSetPmd(mm, vma, addr)) {
    return;
  }
  if (pte === undefined || marker) {
    if (vma.uffd & UFFD_REGISTER_MODES.MISSING) {
      mm.allocPteTables(addr, addr + PAGE_SIZE);
      handleUserfault(ctx, 'MISSING');
    }
    const bit = marker ? PTE_UFFD_WP : 0;
    mm.allocPteTables(addr, addr + PAGE_SIZE);
    const faultAround = !write && shouldFaultAround(vma);
    // do_read_fault(): fault-around first; a cold page is read (around) and the fault retried.
    if (faultAround && vma.mapping.isCached(off) && doFaultAround(mm, vma, addr)) return;
    if (!vma.mapping.isCached(off)) {
      syncReadahead(vma, off);
      if (faultAround && doFaultAround(mm, vma, addr)) return;
    } else {
      cacheHit(vma);
    }
    if (!write) {
      mm.pte.set(addr, addr + PAGE_SIZE, PTE_PRESENT | PTE_FILE | bit);
      return;
    }
    if (bit) resolve();
    // do_shared_fault() maps the page cache page; do_cow_fault() a private anonymous copy.
    const shared = isSharedMapping(vma);
    if (shared && finishFaultWholeFolio(mm, vma, addr)) return;
    if (shared) vma.mapping.dirty.set(off, off + 1, 1);
    else mm.anonVmaPrepare(vma); // do_cow_fault()
    mm.pte.set(addr, addr + PAGE_SIZE, shared ? PTE_PRESENT | PTE_FILE : PTE_PRESENT);
    return;
  }
  if (!ptePresent(pte)) throw new NotModelled('faults on this kind of entry are not modelled yet');
  if (!write) return;
  let next: Pte = pte;
  if (pte & PTE_UFFD_WP && userfaultfdWp(vma)) {
    resolve();
    next &= ~PTE_UFFD_WP;
  }
  // do_wp_page(): a shared mapping writes to the cached page; a private one copies it.
  if (next & PTE_FILE && !isSharedMapping(vma)) {
    mm.anonVmaPrepare(vma);
    next = PTE_PRESENT;
  }
  if (next & PTE_FILE) {
    if (vma.mapping.shmem) vma.mapping.dirty.set(off, off + 1, 1);
    else markFolioDirty(vma.mapping, off);
  }
  if (next !== pte) mm.pte.set(addr, addr + PAGE_SIZE, next);
}

/** MADV_WILLNEED on a disk file reads (the first 2048 pages of) the range into the page cache. */
export function fileWillneed(vma: Vma, start: number, end: number): void {
  const m = vma.mapping;
  if (!m || m.shmem) return;
  forcePageCacheRa(m, pgoff(vma, start), pgoff(vma, end) - pgoff(vma, start));
}

/** MADV_REMOVE (shared mappings): punch a hole in the file, the pages leave the cache. */
export function fileRemove(vma: Vma, start: number, end: number, mm?: MmStruct): void {
  const m = vma.mapping!;
  const lo = pgoff(vma, start);
  const hi = pgoff(vma, end);
  if (!m.shmem) return diskPunchHole(mm, vma, lo, hi);
  for (const folio of m.hugeFoliosIn(lo, hi)) {
    // truncate_inode_partial_folio() splits a huge folio into folios of several orders.
    if (folio < lo || folio + HPAGE_PMD_NR > hi) {
      throw new NotModelled('a hole punched in part of a huge page-cache folio is not modelled yet (it is split into smaller large folios)');
    }
    m.splitHugeFolio(folio);
  }
  m.cache.set(lo, hi, undefined);
}

/**
 * try_to_unmap() of the page-cache pages mapped in [start, end) of one VMA: each PTE becomes
 * none, or a uffd-wp marker where the page was write-protected in a uffd-wp VMA
 * (pte_install_uffd_wp_if_needed()). Anonymous copies and markers are not the file's pages.
 */
export function tryToUnmapFile(mm: MmStruct, vma: Vma, start: number, end: number): void {
  const lo = Math.max(start, vma.start);
  const hi = Math.min(end, vma.end);
  if (lo >= hi) return;
  const keepWp = userfaultfdWp(vma);
  mm.pte.map.update(mm.pte.index(lo), mm.pte.index(hi), (pte) => {
    if (!ptePresent(pte) || !(pte & PTE_FILE)) return pte;
    return keepWp && pte & PTE_UFFD_WP ? PTE_MARKER_UFFD_WP : undefined;
  });
}

/**
 * madvise_cold_or_pageout_pte_range() meeting a PMD-size page-cache folio mapped in [start, end):
 * unless the range maps all of it (by its PMD, or by 512 PTEs in a row), the folio is split
 * (split_folio()), which unmaps every page of it and leaves them cached as small pages, none of
 * them reclaimed by this call. A folio mapped whole is left to reclaim as it is. Returns whether
 * some huge folio is reclaimed whole.
 */
function coldOrPageoutHugeFolios(mm: MmStruct, vma: Vma, start: number, end: number): boolean {
  const m = vma.mapping!;
  let whole = false;
  for (const folio of m.hugeFoliosIn(pgoff(vma, start), pgoff(vma, end))) {
    const block = vma.fileBase! + folio * PAGE_SIZE;
    const covered = start <= block && block + PMD_SIZE <= end;
    if (isHugeLeaf(mm.pmd.get(block)) && block >= vma.start && block + PMD_SIZE <= vma.end) {
      if (covered) whole = true;
      else splitMappedHugeFolio(mm, vma, block, folio);
      continue;
    }
    const lo = Math.max(start, block);
    const hi = Math.min(end, block + PMD_SIZE);
    const first = [...mm.pte.map.runs(mm.pte.index(lo), mm.pte.index(hi))].find((r) => ptePresent(r.value) && r.value & PTE_FILE);
    if (!first) continue;
    const all = mm.pte.map.runAt(mm.pte.index(block));
    const batch = covered && all.value === first.value && all.start <= mm.pte.index(block) && all.end >= mm.pte.index(block + PMD_SIZE);
    if (batch) whole = true;
    else splitMappedHugeFolio(mm, vma, block, folio);
  }
  return whole;
}

/** split_folio() of a mapped file folio: unmap_folio() first, and file pages are not remapped. */
function splitMappedHugeFolio(mm: MmStruct, vma: Vma, block: number, folio: number): void {
  if (isHugeLeaf(mm.pmd.get(block))) mm.pmd.set(block, block + PMD_SIZE, undefined);
  tryToUnmapFile(mm, vma, block, block + PMD_SIZE);
  vma.mapping!.splitHugeFolio(folio);
}

/** MADV_COLD of a file VMA: only large folios the range covers in part change (they are split). */
export function fileCold(mm: MmStruct, vma: Vma, start: number, end: number): void {
  if (vma.mapping && !vma.mapping.shmem) return diskColdOrPageout(mm, vma, start, end, false);
  if (vma.mapping) coldOrPageoutHugeFolios(mm, vma, start, end);
}

/**
 * try_to_unmap() of file pages by MADV_PAGEOUT: the PTEs of page-cache pages go (leaving a uffd-wp
 * marker where the page was write-protected in a uffd-wp VMA); shmem pages go to swap or stay
 * cached, clean pages of a disk file leave the cache.
 */
export function filePageout(mm: MmStruct, vma: Vma, start: number, end: number, swap: boolean): void {
  const m = vma.mapping!;
  // A disk file: clean folios leave the cache, dirty ones stay with PG_reclaim (readahead.ts).
  if (!m.shmem) return diskColdOrPageout(mm, vma, start, end, true);
  if (coldOrPageoutHugeFolios(mm, vma, start, end) && swap) {
    throw new NotModelled('MADV_PAGEOUT of a huge shmem folio to swap is not modelled yet');
  }
  const keepWp = userfaultfdWp(vma);
  for (const run of [...mm.pte.map.runs(mm.pte.index(start), mm.pte.index(end))]) {
    if (!ptePresent(run.value) || !(run.value & PTE_FILE)) continue;
    const marker = keepWp && run.value & PTE_UFFD_WP ? PTE_MARKER_UFFD_WP : undefined;
    mm.pte.map.set(run.start, run.end, marker);
    const lo = pgoff(vma, run.start * PAGE_SIZE);
    const hi = pgoff(vma, run.end * PAGE_SIZE);
    if (m.shmem) {
      if (swap) m.cache.set(lo, hi, SWAPPED_OUT);
    } else {
      m.cache.set(lo, hi, undefined);
    }
  }
}
