// The reference model of one process's address space: a deliberately plain mm_struct.
//
//   vmas       an array of VMAs, sorted, never overlapping
//   ptes       page number -> entry, for the slots that are not pte_none
//   pteTables  2 MiB block numbers that have a PTE table (pmd entry points to a table)
//   pmdTables  1 GiB numbers that have a PMD table (pud entry points to a table)
//   pudTables  512 GiB numbers that have a PUD table (pgd entry; the p4d level is folded)
//
// Written from the kernel sources (mm/*.c, fs/userfaultfd.c, fs/proc/task_mmu.c of 6.18) and
// /work/shared/spec/pagemap-scan-semantics.md, without looking at src/mm: it is the second
// opinion the engine is checked against. Everything is one page at a time; nothing is clever.
//
// Modelled: private anonymous memory (with swap when the system has it), hugetlb (2 MiB and
// 1 GiB pages, private and shared), one huge page at a time, and shmem (MAP_SHARED|MAP_ANONYMOUS,
// memfd mapped private or shared) with its page cache, one page at a time, and anonymous THP
// (thps: PMD-mapped folios and the huge zero page; split into PTEs of a large folio, split_folio()
// with the zero-filled subpages mapped to the zero page). No file/shmem THP, no disk files.

import type { KnownBug } from './known-bugs';

export const PAGE_SIZE = 4096;
export const PMD_SIZE = 2 * 1024 * 1024;
export const PUD_SIZE = 1024 * 1024 * 1024;
/** PGDIR_SIZE with 4-level paging (P4D folded into the PGD). */
export const PGDIR_SIZE = 512 * PUD_SIZE;
/** TASK_SIZE_MAX with 4-level paging. */
export const TASK_SIZE = 0x7ffffffff000;
/** /proc/sys/vm/mmap_min_addr on the machine the expectations come from. */
export const MMAP_MIN_ADDR = 4096;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

// vm_flags bits that decide mergeability, besides VM_READ|VM_WRITE|VM_EXEC (kept in `prot`) and
// the userfaultfd bits (kept in `uffd`). The values are ours.
export const VM_ACCOUNT = 1 << 0;
export const VM_SEQ_READ = 1 << 1;
export const VM_RAND_READ = 1 << 2;
export const VM_DONTCOPY = 1 << 3;
export const VM_HUGEPAGE = 1 << 4;
export const VM_NOHUGEPAGE = 1 << 5;

// UFFDIO_REGISTER_MODE_* = VM_UFFD_* here.
export const VM_UFFD_MISSING = 1 << 0;
export const VM_UFFD_WP = 1 << 1;
export const VM_UFFD_MINOR = 1 << 2;

export interface Vma {
  start: number;
  end: number;
  prot: number;
  flags: number;
  /** VM_UFFD_* bits; non-zero means registered with the process's (only) userfaultfd. */
  uffd: number;
  /** Identity of the anon_vma, or null before anon_vma_prepare(). */
  anonVma: number | null;
  /** hugetlb: the VMA's hstate and its file (null: not hugetlb). */
  huge: HugeMapping | null;
  /** shmem: the file and where the VMA maps it (null: not shmem; vma_is_anonymous() is both null). */
  shm?: ShmMapping | null;
}

/**
 * What a shmem VMA maps: every mmap() here has a file of its own (MAP_SHARED|MAP_ANONYMOUS:
 * shmem_zero_setup(); memfd: a new memfd, ftruncate()d to the length and closed after mmap), so
 * only the VMAs split from one mmap() share one, each at its own offsets.
 */
export interface ShmMapping {
  file: ShmFile;
  /** vm_pgoff, in pages. */
  pgoff: number;
  /** VM_SHARED: writes go to the page cache; private: a write copies the page (COW, anonymous). */
  shared: boolean;
}

/** A shmem page-cache entry: a folio (`dirty`: PG_dirty) or, once swapped out, a swap entry. */
export interface ShmPage {
  dirty: boolean;
  swapped: boolean;
}

/** The shmem inode: i_size in pages and its page cache (xarray) by index. */
export interface ShmFile {
  id: number;
  /** DIV_ROUND_UP(i_size, PAGE_SIZE) */
  pages: number;
  cache: Map<number, ShmPage>;
}

/**
 * What a hugetlb VMA maps: MAP_HUGETLB makes a file on the internal hugetlbfs mount for every
 * mmap(), so VMAs split from one mmap() share it (and its reservations), and no two mmap()s do.
 */
export interface HugeMapping {
  /** huge_page_size(hstate_vma(vma)) */
  size: number;
  /** VM_SHARED (MAP_SHARED): the pages are the file's page cache (PAGE_IS_FILE). */
  shared: boolean;
  file: HugeFile;
  /** vm_pgoff of the VMA, in huge pages. */
  pgoff: number;
}

/** The hugetlbfs inode behind a MAP_HUGETLB mapping, and the reservation map. */
export interface HugeFile {
  id: number;
  /** The pool the pages come from: '2M' or '1G'. */
  pool: '2M' | '1G';
  /** Shared: page-cache pages by index (they outlive the mapping of them). */
  cache: Set<number>;
  /**
   * resv_map regions. Shared mappings (inode map): indices with a reservation, consumed or not;
   * private mappings (HPAGE_RESV_OWNER map): indices whose reservation was consumed.
   */
  resvMap: Set<number>;
  /** VMAs referring to the file (vm_file references); the inode goes with the last one. */
  users: number;
}

/** A hugetlb entry (huge_ptep_get()) that is not huge_pte_none(). */
export type HugePte =
  /** A huge page: anonymous (private) or the file's page (shared); `wp`: huge_pte_uffd_wp(). */
  | { kind: 'page'; wp: boolean; file: boolean }
  /** make_pte_marker(PTE_MARKER_UFFD_WP) */
  | { kind: 'marker' };

/** The hugetlb pool of one size: nr_huge_pages, free_huge_pages, resv_huge_pages. */
export interface HugePool {
  /** Infinity: the scenario did not size the pool ("as many as it needs"). */
  total: number;
  /** Pages in use (mapped privately, or in a file's page cache). */
  used: number;
  /** Reservations not consumed yet. */
  resv: number;
}

/**
 * A PMD leaf of an anonymous VMA: a THP (`folio`) or the huge zero page (`zero`). `wp`:
 * pmd_uffd_wp(); `writable`: pmd_write(); `data`: the subpages (0..511) a touch stored a byte in
 * (the others are zero-filled); `lazyfree`/`redirtied` as for a PTE.
 */
export interface Thp {
  zero: boolean;
  wp: boolean;
  writable: boolean;
  folio: number;
  data: Set<number>;
  lazyfree: boolean;
  redirtied?: boolean;
}

/** A situation the reference does not model: the run stops as 'notmodelled'. */
export class NotModelled extends Error {}

/** A PTE that is not pte_none. */
export type Pte =
  /**
   * An anonymous page. `writable`: the PTE has write permission (a write does not fault);
   * `lazyfree`: MADV_FREE made it clean and it was not dirtied since; `redirtied`: MADV_FREE'd
   * and written since (the folio is still !swapbacked, the PTE dirty).
   */
  | {
      kind: 'page';
      wp: boolean;
      writable: boolean;
      lazyfree: boolean;
      redirtied?: boolean;
      /** A subpage of a large folio (a THP whose PMD was split): the folio's id. */
      folio?: number;
      /** (large folios only) a touch stored a byte in it: not zero-filled. */
      data?: boolean;
    }
  /** The shared zero page (a read fault of anonymous memory). */
  | { kind: 'zero'; wp: boolean }
  /** make_pte_marker(PTE_MARKER_UFFD_WP) */
  | { kind: 'marker' }
  /** make_pte_marker(PTE_MARKER_GUARD), possibly with the swap-style uffd-wp bit. */
  | { kind: 'guard'; wp: boolean }
  /** A swap entry of an anonymous page paged out (pte_swp_uffd_wp() in `wp`). */
  | { kind: 'swap'; wp: boolean }
  /**
   * A shmem page-cache page (not anonymous: PAGE_IS_FILE), `wp`: pte_uffd_wp(); `writable`: a
   * stale bit made writable by wp_page_shared() outside a uffd-wp VMA (writes no longer fault).
   */
  | { kind: 'file'; wp: boolean; writable?: boolean };

// (Math's functions are taken once: looking `Math` up in jest's sandbox is slow in hot loops.)
const { floor, ceil, min } = Math;

export const pageOf = (addr: number): number => floor(addr / PAGE_SIZE);
export const blockOf = (addr: number): number => floor(addr / PMD_SIZE);
export const pudIndexOf = (addr: number): number => floor(addr / PUD_SIZE);
export const pgdIndexOf = (addr: number): number => floor(addr / PGDIR_SIZE);
export const alignDown = (addr: number, size: number): number => floor(addr / size) * size;
export const alignUp = (addr: number, size: number): number => ceil(addr / size) * size;
/** pmd_addr_end() and friends: the next `size` boundary after addr, or end if that comes first. */
export const addrEnd = (addr: number, end: number, size: number): number => min(alignDown(addr, size) + size, end);

export class RefMm {
  vmas: Vma[] = [];
  readonly ptes = new Map<number, Pte>();
  readonly pteTables = new Set<number>();
  readonly pmdTables = new Set<number>();
  readonly pudTables = new Set<number>();
  /** hugetlb entries, by the address of their huge page (in a PMD table for 2 MiB, PUD for 1 GiB). */
  readonly huge = new Map<number, HugePte>();
  readonly pools: Record<'2M' | '1G', HugePool> = {
    '2M': { total: Infinity, used: 0, resv: 0 },
    '1G': { total: Infinity, used: 0, resv: 0 },
  };
  /** system.swap: a swap device exists. */
  swap = false;
  /** PMD leaves of anonymous VMAs (THP, huge zero page), by 2 MiB block number. */
  readonly thps = new Map<number, Thp>();
  /** /sys/kernel/mm/transparent_hugepage/enabled */
  thpMode: 'always' | 'madvise' | 'never' = 'madvise';
  /** Set while a fault stores nothing (MADV_POPULATE_WRITE): no subpage gets data. */
  noStore = false;
  private folios = 0;
  private anonVmas = 0;
  private files = 0;
  /**
   * Kernel rules this run exercised that the engine is known to get wrong (known-bugs.ts), with
   * the steps where each was exercised.
   */
  readonly notes = new Map<KnownBug, number[]>();
  /** The step being executed (for notes). */
  step = 0;

  note(bug: KnownBug): void {
    const steps = this.notes.get(bug) ?? [];
    if (steps[steps.length - 1] !== this.step) steps.push(this.step);
    this.notes.set(bug, steps);
  }

  // ---- VMAs ------------------------------------------------------------------------------

  /** find_vma(): the first VMA with vm_end > addr. */
  findVma(addr: number): Vma | undefined {
    return this.vmas.find((v) => v.end > addr);
  }

  /** vma_lookup(): the VMA containing addr. */
  vmaLookup(addr: number): Vma | undefined {
    const v = this.findVma(addr);
    return v && v.start <= addr ? v : undefined;
  }

  /** for_each_vma_range(): the VMAs intersecting [start, end), in order. */
  vmasIntersecting(start: number, end: number): Vma[] {
    return this.vmas.filter((v) => v.start < end && v.end > start);
  }

  /** The VMA ending at or before addr that is closest to it (the "prev" of a range at addr). */
  prevOf(addr: number): Vma | undefined {
    let prev: Vma | undefined;
    for (const v of this.vmas) if (v.end <= addr) prev = v;
    return prev;
  }

  insertVma(vma: Vma): void {
    this.vmas.push(vma);
    this.vmas.sort((a, b) => a.start - b.start);
  }

  /** __split_vma() at addr (inside a VMA): both halves keep flags, registration and anon_vma. */
  splitAt(addr: number): void {
    const v = this.vmaLookup(addr);
    if (!v || v.start === addr) return;
    if (!this.maySplitAt(addr)) throw new Error(`reference bug: splitting a hugetlb VMA at 0x${addr.toString(16)}`);
    // vma_adjust_trans_huge(): a PMD leaf across the new boundary is split (__split_huge_pmd()).
    if (addr % PMD_SIZE !== 0 && this.thps.has(blockOf(addr))) this.splitHugePmd(addr);
    const tail: Vma = { ...v, start: addr };
    if (v.huge) {
      tail.huge = { ...v.huge, pgoff: v.huge.pgoff + (addr - v.start) / v.huge.size };
      v.huge.file.users++; // vma_dup(): get_file()
    }
    if (v.shm) tail.shm = { ...v.shm, pgoff: v.shm.pgoff + (addr - v.start) / PAGE_SIZE };
    v.end = addr;
    this.insertVma(tail);
  }

  /** __split_vma() -> vm_ops->may_split (hugetlb_vm_op_split()): huge pages are not split. */
  maySplitAt(addr: number): boolean {
    const v = this.vmaLookup(addr);
    if (!v || v.start === addr || !v.huge) return true;
    return addr % v.huge.size === 0;
  }

  /** Whether [start, end) can be made of whole VMAs (what isolate() would do) without EINVAL. */
  mayIsolate(start: number, end: number): boolean {
    return this.maySplitAt(start) && this.maySplitAt(end);
  }

  /** Split so that [start, end) is made of whole VMAs; returns them. */
  isolate(start: number, end: number): Vma[] {
    this.splitAt(start);
    this.splitAt(end);
    return this.vmasIntersecting(start, end);
  }

  /**
   * The vma_merge_*() rules for two neighbours: adjacent, equal flags and registration, and
   * anon_vmas that can be shared (is_mergeable_anon_vma(): one of them unset, or the same one).
   * vm_pgoff always lines up for anonymous VMAs that were never moved.
   */
  static canMerge(prev: Vma, next: Vma): boolean {
    return (
      // hugetlb VMAs have a vm_ops->close (can_merge_remove_vma() refuses), and every
      // MAP_HUGETLB mmap() has its own file: they never merge.
      prev.huge === null &&
      next.huge === null &&
      // File VMAs: the same file at contiguous offsets (is_mergeable_vma(), can_vma_merge_*()).
      !prev.shm === !next.shm &&
      (!prev.shm || (prev.shm.file === next.shm!.file && prev.shm.pgoff + (prev.end - prev.start) / PAGE_SIZE === next.shm!.pgoff)) &&
      prev.end === next.start &&
      prev.prot === next.prot &&
      prev.flags === next.flags &&
      prev.uffd === next.uffd &&
      (prev.anonVma === null || next.anonVma === null || prev.anonVma === next.anonVma)
    );
  }

  /**
   * Merge the VMAs around [start, end) after a modification there, left to right: this is what
   * vma_merge_new_range() / vma_merge_existing_range() end up doing, including preferring the left
   * neighbour when prev and next have different anon_vmas.
   */
  mergeAround(start: number, end: number): void {
    let i = 0;
    while (i + 1 < this.vmas.length) {
      const a = this.vmas[i];
      const b = this.vmas[i + 1];
      const near = b.start >= start && a.end <= end;
      if (near && RefMm.canMerge(a, b)) {
        a.end = b.end;
        a.anonVma ??= b.anonVma;
        this.vmas.splice(i + 1, 1);
      } else i++;
    }
  }

  newShmFile(pages: number): ShmFile {
    return { id: ++this.files, pages, cache: new Map() };
  }

  /** The page index (in its file) of addr inside shmem VMA vma. */
  static shmIndex(vma: Vma, addr: number): number {
    return vma.shm!.pgoff + floor((addr - vma.start) / PAGE_SIZE);
  }

  newHugeFile(pool: '2M' | '1G'): HugeFile {
    return { id: ++this.files, pool, cache: new Set(), resvMap: new Set(), users: 0 };
  }

  /** The huge page index (in the file) of addr inside hugetlb VMA vma. */
  static hugeIndex(vma: Vma, addr: number): number {
    const h = vma.huge!;
    return h.pgoff + floor((addr - vma.start) / h.size);
  }

  /**
   * hugetlb_walk() / huge_pte_offset(): whether the table holding the entry of addr's huge page
   * exists (a PUD table for 1 GiB pages, a PMD table for 2 MiB ones).
   */
  hugeTableExists(vma: Vma, addr: number): boolean {
    if (!this.pudTables.has(pgdIndexOf(addr))) return false;
    return vma.huge!.size === PUD_SIZE || this.pmdTables.has(pudIndexOf(addr));
  }

  /** huge_pte_alloc() */
  hugePteAlloc(vma: Vma, addr: number): void {
    if (vma.huge!.size === PUD_SIZE) this.pudAlloc(addr);
    else this.pmdAlloc(addr);
  }

  /** The entry of the huge page at `slot` (huge_pte_none(): undefined). */
  hugeGet(slot: number): HugePte | undefined {
    return this.huge.get(slot);
  }

  hugeSet(vma: Vma, slot: number, pte: HugePte | undefined): void {
    if (!this.hugeTableExists(vma, slot)) throw new Error(`reference bug: set_huge_pte_at(0x${slot.toString(16)}) without a table`);
    if (pte === undefined) this.huge.delete(slot);
    else this.huge.set(slot, pte);
  }

  /** anon_vma_prepare() */
  anonVmaPrepare(vma: Vma): void {
    if (vma.anonVma === null) vma.anonVma = ++this.anonVmas;
  }

  // ---- THP -------------------------------------------------------------------------------

  newFolio(): number {
    return ++this.folios;
  }

  /**
   * thp_vma_allowable_order(TVA_PAGEFAULT, PMD_ORDER) + thp_vma_suitable_order(): an anonymous
   * VMA THP may be used in (the mode, VM_HUGEPAGE / VM_NOHUGEPAGE) whose VMA holds the whole
   * 2 MiB block of addr.
   */
  thpAllowed(vma: Vma, addr: number): boolean {
    if (vma.huge || vma.shm) return false;
    if (this.thpMode === 'never') return false;
    if (vma.flags & VM_NOHUGEPAGE) return false;
    if (this.thpMode === 'madvise' && !(vma.flags & VM_HUGEPAGE)) return false;
    const s = alignDown(addr, PMD_SIZE);
    return s >= vma.start && s + PMD_SIZE <= vma.end;
  }

  thpGet(addr: number): Thp | undefined {
    return this.thps.get(blockOf(addr));
  }

  /**
   * __split_huge_pmd() of addr's block: the deposited table becomes the PTE table, 512 PTEs
   * inheriting the PMD's bits: zero PTEs for the huge zero page, PTEs of the (still large) folio
   * otherwise.
   */
  splitHugePmd(addr: number): void {
    const b = blockOf(addr);
    const thp = this.thps.get(b);
    if (!thp) return;
    this.thps.delete(b);
    this.pteAlloc(addr);
    for (let i = 0; i < 512; i++) {
      const a = b * PMD_SIZE + i * PAGE_SIZE;
      if (thp.zero) this.pteSet(a, { kind: 'zero', wp: thp.wp });
      else {
        this.pteSet(a, {
          kind: 'page',
          wp: thp.wp,
          writable: thp.writable,
          lazyfree: thp.lazyfree,
          redirtied: thp.redirtied,
          folio: thp.folio,
          data: thp.data.has(i),
        });
      }
    }
  }

  /**
   * split_folio() of the large folio mapped in addr's block (PMD-mapped: unmapped whole first):
   * remap_page() with RMP_USE_SHARED_ZEROPAGE maps every zero-filled subpage to the zero page
   * (keeping its uffd-wp bit); the others become small pages.
   */
  splitFolio(addr: number, folio: number): void {
    const b = blockOf(addr);
    const thp = this.thps.get(b);
    if (thp && !thp.zero && thp.folio === folio) this.splitHugePmd(addr);
    if (!this.pteTables.has(b)) return;
    for (let p = b * 512; p < (b + 1) * 512; p++) {
      const pte = this.ptes.get(p);
      if (pte?.kind !== 'page' || pte.folio !== folio) continue;
      if (!pte.data) this.ptes.set(p, { kind: 'zero', wp: pte.wp });
      else {
        delete pte.folio;
        delete pte.data;
      }
    }
  }

  /** The pages of folio `folio` still mapped in addr's block (PTE-mapped). */
  folioPages(addr: number, folio: number): number[] {
    const b = blockOf(addr);
    const out: number[] = [];
    for (let p = b * 512; p < (b + 1) * 512; p++) {
      const pte = this.ptes.get(p);
      if (pte?.kind === 'page' && pte.folio === folio) out.push(p * PAGE_SIZE);
    }
    return out;
  }

  /**
   * zap_pmd_range() for the PMD leaves of [start, end): a block covered whole loses its leaf
   * (zap_huge_pmd(): a hole again), one covered in part is split for the PTE zap.
   */
  zapThps(start: number, end: number): void {
    for (let addr = start; addr < end; ) {
      const next = addrEnd(addr, end, PMD_SIZE);
      if (this.thps.has(blockOf(addr))) {
        if (next - addr === PMD_SIZE) this.thps.delete(blockOf(addr));
        else this.splitHugePmd(addr);
      }
      addr = next;
    }
  }

  // ---- page tables -----------------------------------------------------------------------

  hasPteTable(addr: number): boolean {
    return this.pteTables.has(blockOf(addr));
  }

  /** pud_alloc(): the PUD table of addr's 512 GiB. */
  pudAlloc(addr: number): void {
    this.pudTables.add(pgdIndexOf(addr));
  }

  /** pmd_alloc(): the PMD table of addr's 1 GiB (and the tables above it). */
  pmdAlloc(addr: number): void {
    this.pudAlloc(addr);
    this.pmdTables.add(pudIndexOf(addr));
  }

  /** pte_alloc(): the PTE table of addr's 2 MiB block (and the tables above it). */
  pteAlloc(addr: number): void {
    this.pmdAlloc(addr);
    this.pteTables.add(blockOf(addr));
  }

  /** ptep_get(): the entry of a slot in an existing PTE table (undefined: pte_none). */
  pteGet(addr: number): Pte | undefined {
    return this.ptes.get(pageOf(addr));
  }

  /** set_pte_at() / pte_clear() (undefined). The table must exist. */
  pteSet(addr: number, pte: Pte | undefined): void {
    if (!this.hasPteTable(addr)) throw new Error(`reference bug: set_pte_at(0x${addr.toString(16)}) without a PTE table`);
    if (pte === undefined) this.ptes.delete(pageOf(addr));
    else this.ptes.set(pageOf(addr), pte);
  }

  /** Free the PTE table of a 2 MiB block; every slot must already be none. */
  freePteTable(block: number): void {
    for (let p = block * 512; p < (block + 1) * 512; p++) {
      if (this.ptes.has(p)) throw new Error(`reference bug: freeing the PTE table of block ${block} with page ${p} mapped`);
    }
    this.pteTables.delete(block);
  }

  /** Free the PMD table of a 1 GiB span; it must hold no PTE table any more. */
  freePmdTable(pud: number): void {
    for (let b = pud * 512; b < (pud + 1) * 512; b++) {
      if (this.pteTables.has(b)) throw new Error(`reference bug: freeing the PMD table of ${pud} GiB with a PTE table at block ${b}`);
      if (this.thps.has(b)) throw new Error(`reference bug: freeing the PMD table of ${pud} GiB with a THP at block ${b}`);
      if (this.huge.has(b * PMD_SIZE)) throw new Error(`reference bug: freeing the PMD table of ${pud} GiB with a hugetlb entry at block ${b}`);
    }
    this.pmdTables.delete(pud);
  }

  /** Free the PUD table of a 512 GiB span; it must hold no PMD table any more. */
  freePudTable(pgd: number): void {
    for (let g = pgd * 512; g < (pgd + 1) * 512; g++) {
      if (this.pmdTables.has(g)) throw new Error(`reference bug: freeing the PUD table of ${pgd} with a PMD table at ${g} GiB`);
      if (this.huge.has(g * PUD_SIZE)) throw new Error(`reference bug: freeing the PUD table of ${pgd} with a hugetlb entry at ${g} GiB`);
    }
    this.pudTables.delete(pgd);
  }
}
