// File-backed memory: the page cache of each file (struct address_space) and the faults of
// file and shmem VMAs (mm/filemap.c, mm/shmem.c, do_fault() in mm/memory.c). A disk file's folios,
// readahead, fault-around and reclaim are in readahead.ts; the entry points here dispatch to it.

import { PAGE_SIZE, PMD_SIZE } from '../uapi';
import { roundDown, type MmStruct } from './mm';
import { RunMap } from './runmap';
import { PTE_FILE, PTE_MARKER_UFFD_WP, PTE_PRESENT, PTE_SWAP, PTE_UFFD_WP, PTE_WRITE, isHugeLeaf, isUffdWpMarker, ptePresent, pteKind, type Pte } from './pte';
import { userfaultfdWp, type Vma } from './vma';
import { handleUserfault, type UffdCtx } from './userfaultfd';
import { UFFD_REGISTER_MODES } from '../uapi';
import {
  diskColdOrPageout,
  diskFileFault,
  diskPunchHole,
  FileRaState,
  filemapMapPages,
  finishFault,
  FOLIO,
  folioAt,
  folioOrder,
  folioValue,
  forcePageCacheRa,
  markFolioDirty,
} from './readahead';

/** A small folio in the page cache (folioValue(0)). */
export const CACHED = folioValue(0);
/** shmem only: the page is swapped out (a swap entry in the page cache, xa_is_value()). */
export const SWAPPED_OUT = 2;
/** HPAGE_PMD_ORDER */
const PMD_ORDER = 9;

let nextMappingId = 1;

/** struct address_space: one file (a regular file, a memfd, or the object of a shared-anon mmap). */
export class AddressSpace {
  readonly id = nextMappingId++;
  /**
   * By page offset: folio values (FOLIO | order, and for a disk file PG_readahead and PG_dirty;
   * see readahead.ts), or SWAPPED_OUT (shmem); absent pages are holes of the file. shmem folios
   * are small, PMD-size (collapse_file()), or the pieces a hole punched in one left.
   */
  readonly cache = new RunMap();
  /** shmem pages written through a shared mapping (a disk file keeps PG_dirty in its folios). */
  readonly dirty = new RunMap();
  /** file->f_ra.mmap_miss: up on cold faults, down on hits; read-around stops past 100. */
  mmapMiss = 0;
  /** file->f_ra: the readahead window of a disk file (readahead.ts). */
  readonly ra: FileRaState;
  constructor(
    /** shmem (tmpfs, memfd, MAP_SHARED|MAP_ANONYMOUS) rather than a disk file. */
    readonly shmem: boolean,
    readonly sizePages: number,
    raPages?: number,
  ) {
    this.ra = new FileRaState(raPages);
  }

  isCached(off: number): boolean {
    return ((this.cache.get(off) ?? 0) & FOLIO) !== 0;
  }

  /** The page at off is part of a PMD-size folio (folio_test_pmd_mappable()). */
  isHugeFolio(off: number): boolean {
    return this.isCached(off) && folioOrder(this.cache.get(off)!) === PMD_ORDER;
  }

  /** The 512 pages from start (aligned) are now one PMD-size folio (collapse_file(): dirty). */
  setHugeFolio(start: number): void {
    this.cache.set(start, start + HPAGE_PMD_NR, folioValue(PMD_ORDER));
    if (this.shmem) this.dirty.set(start, start + HPAGE_PMD_NR, 1);
  }

  /** The first page of each large folio (order >= 1) that has a page in [start, end). */
  largeFoliosIn(start: number, end: number): number[] {
    const out: number[] = [];
    for (const run of this.cache.runs(start, end)) {
      if (!(run.value & FOLIO) || folioOrder(run.value) === 0) continue;
      const n = 2 ** folioOrder(run.value);
      for (let f = roundDown(run.start, n); f < run.end; f += n) out.push(f);
    }
    return out;
  }

  /** The first page of each PMD-size folio that has a page in [start, end). */
  hugeFoliosIn(start: number, end: number): number[] {
    return this.largeFoliosIn(start, end).filter((f) => this.isHugeFolio(f));
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

/** should_fault_around(): not in uffd-wp or minor VMAs (uffd_disable_fault_around()). */
function shouldFaultAround(vma: Vma): boolean {
  return !(vma.uffd & (UFFD_REGISTER_MODES.WP | UFFD_REGISTER_MODES.MINOR));
}

/**
 * shmem_fault() -> shmem_get_folio_gfp() for page off: any entry, a folio or a swap entry, in a
 * VMA registered for minor faults goes to the userfaultfd reader (VM_UFFD_MINOR), before anything
 * is mapped or read back. A swap entry is read back into the page cache (shmem_swapin_folio(): the
 * page alone, its neighbours stay swap entries); a hole goes to the reader of a MISSING
 * registration, or gets a new small folio (the global shmem_enabled is never).
 */
function shmemGetFolio(vma: Vma, ctx: UffdCtx | null, off: number): void {
  const m = vma.mapping!;
  const entry = m.cache.get(off);
  if (entry !== undefined && vma.uffd & UFFD_REGISTER_MODES.MINOR) handleUserfault(ctx, 'MINOR');
  // shmem_swapin_folio(): the page is back in the cache, dirty (its swap entry is freed).
  if (entry === SWAPPED_OUT) {
    m.cache.set(off, off + 1, CACHED);
    m.dirty.set(off, off + 1, 1);
  }
  if (entry !== undefined) return;
  if (vma.uffd & UFFD_REGISTER_MODES.MISSING) handleUserfault(ctx, 'MISSING');
  // shmem_alloc_and_add_folio(): a new page, zeroed and up to date but clean.
  m.cache.set(off, off + 1, CACHED);
  m.dirty.set(off, off + 1, undefined);
}

/**
 * do_read_fault(), do_shared_fault(), do_cow_fault() for a none slot (or a uffd-wp marker, `bit`)
 * of a shmem VMA. A read tries fault-around first (filemap_map_pages(), which maps a PMD-size
 * folio by a PMD and other large folios whole); then __do_fault() -> shmem_fault(), and
 * finish_fault() maps the folio (by a PMD, whole, or the page alone). A shared write dirties the
 * page; a private write copies it (do_cow_fault()).
 */
function shmemFault(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, addr: number, write: boolean, bit: number, resolve: () => void): void {
  const m = vma.mapping!;
  const off = pgoff(vma, addr);
  if (!write && shouldFaultAround(vma) && filemapMapPages(mm, vma, addr)) return;
  shmemGetFolio(vma, ctx, off);
  const folio = folioAt(m, off)!;
  if (!write) return finishFault(mm, vma, addr, folio, bit);
  if (bit) resolve();
  if (isSharedMapping(vma)) {
    finishFault(mm, vma, addr, folio, 0);
    m.dirty.set(off, off + 1, 1);
    return;
  }
  mm.anonVmaPrepare(vma); // do_cow_fault()
  mm.allocPteTables(addr, addr + PAGE_SIZE);
  mm.pte.set(addr, addr + PAGE_SIZE, PTE_PRESENT);
}

/**
 * do_fault() for one page of a file or shmem VMA whose PTE is none or a uffd-wp marker
 * (do_read_fault(), do_cow_fault(), do_shared_fault()), and do_wp_page() for a present one.
 * `resolve` is asked when a write meets a uffd-wp bit (async mode resolves it, else it blocks).
 */
export function doFileFault(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, addr: number, write: boolean, resolve: () => void): void {
  if (!vma.mapping) throw new Error(`internal: doFileFault() on a ${vma.kind} VMA`);
  const off = pgoff(vma, addr);
  // Every file is created with its mapping's size and VMAs never grow: no page lies beyond EOF.
  if (off >= vma.mapping.sizePages) throw new Error('internal: a file fault beyond the end of the file');
  let pte = mm.pte.get(addr);
  // pte_marker_handle_uffd_wp(): a leftover marker in a VMA no longer uffd-wp is cleared, and
  // the fault retried on the none slot.
  if (pte !== undefined && isUffdWpMarker(pte) && !userfaultfdWp(vma)) {
    mm.pte.set(addr, addr + PAGE_SIZE, undefined);
    pte = undefined;
  }
  if (pte !== undefined && pteKind(pte) === PTE_SWAP) {
    throw new Error('internal: a swap entry reached doFileFault() (handle_mm_fault() swaps it in first)');
  }
  const marker = pte !== undefined && isUffdWpMarker(pte);
  if (pte === undefined || marker) {
    const bit = marker ? PTE_UFFD_WP : 0;
    if (vma.mapping.shmem) return shmemFault(mm, vma, ctx, addr, write, bit, resolve);
    // A disk file: its folios, readahead and fault-around are in readahead.ts. (Only WP_ASYNC
    // registers a disk file, so MISSING never gets here.)
    return diskFileFault(mm, vma, addr, write, bit, resolve);
  }
  if (!ptePresent(pte)) throw new Error(`internal: a file fault on entry ${pte}`);
  // A writable page does not fault at all, whatever stale uffd-wp bit it carries.
  if (!write || pte & PTE_WRITE) return;
  let next: Pte = pte;
  if (pte & PTE_UFFD_WP) {
    if (userfaultfdWp(vma)) {
      resolve();
      next &= ~PTE_UFFD_WP;
    } else if (isSharedMapping(vma)) {
      // do_wp_page() outside a uffd-wp VMA: wp_page_reuse() makes the page writable and keeps
      // the (stale) bit; later writes do not fault, even once the VMA is uffd-wp again.
      next |= PTE_WRITE;
    }
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

/**
 * MADV_REMOVE (shared mappings): punch a hole in the file, the pages leave the cache. shmem:
 * shmem_undo_range() -> truncate_inode_partial_folio(), the same splits as a clean folio of a disk
 * file: a large folio the hole covers in part is unmapped whole and split (folio_split()) at the
 * hole's first page and again at the first page after it, into the largest aligned folios around
 * them; swap entries in the hole are freed.
 */
export function fileRemove(vma: Vma, start: number, end: number, mm?: MmStruct): void {
  diskPunchHole(mm, vma, pgoff(vma, start), pgoff(vma, end));
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
 * madvise_cold_or_pageout_pte_range() meeting the large shmem folios mapped in [start, end): unless
 * the range maps all of one (by its PMD, or by its PTEs in a row), it is split (split_folio(), to
 * order 0), which unmaps every page of it and leaves them cached as small pages, none of them
 * reclaimed by this call. Returns the folios mapped whole, by their first page, left to reclaim.
 */
function coldOrPageoutLargeFolios(mm: MmStruct, vma: Vma, start: number, end: number): number[] {
  const m = vma.mapping!;
  const whole: number[] = [];
  for (const folio of m.largeFoliosIn(pgoff(vma, start), pgoff(vma, end))) {
    const size = 2 ** folioOrder(m.cache.get(folio)!) * PAGE_SIZE;
    const block = vma.fileBase! + folio * PAGE_SIZE;
    const covered = start <= block && block + size <= end;
    if (size === PMD_SIZE && isHugeLeaf(mm.pmd.get(block)) && block >= vma.start && block + PMD_SIZE <= vma.end) {
      if (covered) whole.push(folio);
      else splitMappedFolio(mm, vma, block, size);
      continue;
    }
    const lo = Math.max(start, block);
    const hi = Math.min(end, block + size);
    const first = [...mm.pte.map.runs(mm.pte.index(lo), mm.pte.index(hi))].find((r) => ptePresent(r.value) && r.value & PTE_FILE);
    if (!first) continue;
    const all = mm.pte.map.runAt(mm.pte.index(block));
    const batch = covered && all.value === first.value && all.start <= mm.pte.index(block) && all.end >= mm.pte.index(block + size);
    if (batch) whole.push(folio);
    else splitMappedFolio(mm, vma, block, size);
  }
  return whole;
}

/** split_folio() of a mapped file folio: unmap_folio() first, and file pages are not remapped. */
function splitMappedFolio(mm: MmStruct, vma: Vma, block: number, size: number): void {
  if (isHugeLeaf(mm.pmd.get(block))) mm.pmd.set(block, block + PMD_SIZE, undefined);
  tryToUnmapFile(mm, vma, block, block + size);
  const off = pgoff(vma, block);
  vma.mapping!.cache.set(off, off + size / PAGE_SIZE, CACHED);
}

/** MADV_COLD of a file VMA: only large folios the range covers in part change (they are split). */
export function fileCold(mm: MmStruct, vma: Vma, start: number, end: number): void {
  if (vma.mapping && !vma.mapping.shmem) return diskColdOrPageout(mm, vma, start, end, false);
  if (vma.mapping) coldOrPageoutLargeFolios(mm, vma, start, end);
}

/**
 * try_to_unmap() of file pages by MADV_PAGEOUT: the PTEs of page-cache pages go (leaving a uffd-wp
 * marker where the page was write-protected in a uffd-wp VMA), and the PMD of a PMD-size folio
 * reclaimed whole; clean pages of a disk file leave the cache. shmem pages go to swap
 * (shmem_writeout(); a large folio whole, with CONFIG_THP_SWAP), or without swap stay cached.
 */
export function filePageout(mm: MmStruct, vma: Vma, start: number, end: number, swap: boolean): void {
  const m = vma.mapping!;
  // A disk file: clean folios leave the cache, dirty ones stay with PG_reclaim (readahead.ts).
  if (!m.shmem) return diskColdOrPageout(mm, vma, start, end, true);
  for (const folio of coldOrPageoutLargeFolios(mm, vma, start, end)) {
    const block = vma.fileBase! + folio * PAGE_SIZE;
    if (!isHugeLeaf(mm.pmd.get(block))) continue;
    mm.pmd.set(block, block + PMD_SIZE, undefined);
    if (swap) m.cache.set(folio, folio + HPAGE_PMD_NR, SWAPPED_OUT);
  }
  const keepWp = userfaultfdWp(vma);
  for (const run of [...mm.pte.map.runs(mm.pte.index(start), mm.pte.index(end))]) {
    if (!ptePresent(run.value) || !(run.value & PTE_FILE)) continue;
    const marker = keepWp && run.value & PTE_UFFD_WP ? PTE_MARKER_UFFD_WP : undefined;
    mm.pte.map.set(run.start, run.end, marker);
    // shrink_folio_list(): a clean page leaves the cache (__remove_mapping()); a dirty one goes
    // to shmem_writeout(): to swap, or without swap redirtied and kept.
    const lo = pgoff(vma, run.start * PAGE_SIZE);
    const hi = pgoff(vma, run.end * PAGE_SIZE);
    for (const seg of [...m.dirty.segments(lo, hi)]) {
      if (seg.value === undefined) m.cache.set(seg.start, seg.end, undefined);
      else if (swap) m.cache.set(seg.start, seg.end, SWAPPED_OUT);
    }
  }
}
