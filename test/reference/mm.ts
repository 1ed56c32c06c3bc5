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
// Only private anonymous memory is modelled (no THP, swap, hugetlb, files), like the engine.

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
}

/** A PTE that is not pte_none. */
export type Pte =
  /**
   * An anonymous page. `writable`: the PTE has write permission (a write does not fault);
   * `lazyfree`: MADV_FREE made it clean and it was not dirtied since.
   */
  | { kind: 'page'; wp: boolean; writable: boolean; lazyfree: boolean }
  /** The shared zero page (a read fault of anonymous memory). */
  | { kind: 'zero'; wp: boolean }
  /** make_pte_marker(PTE_MARKER_UFFD_WP) */
  | { kind: 'marker' }
  /** make_pte_marker(PTE_MARKER_GUARD), possibly with the swap-style uffd-wp bit. */
  | { kind: 'guard'; wp: boolean };

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
  private anonVmas = 0;
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
    const tail: Vma = { ...v, start: addr };
    v.end = addr;
    this.insertVma(tail);
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

  /** anon_vma_prepare() */
  anonVmaPrepare(vma: Vma): void {
    if (vma.anonVma === null) vma.anonVma = ++this.anonVmas;
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
    }
    this.pmdTables.delete(pud);
  }

  /** Free the PUD table of a 512 GiB span; it must hold no PMD table any more. */
  freePudTable(pgd: number): void {
    for (let g = pgd * 512; g < (pgd + 1) * 512; g++) {
      if (this.pmdTables.has(g)) throw new Error(`reference bug: freeing the PUD table of ${pgd} with a PMD table at ${g} GiB`);
    }
    this.pudTables.delete(pgd);
  }
}
