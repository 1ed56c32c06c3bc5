// PAGEMAP_SCAN, transliterated from fs/proc/task_mmu.c (do_pagemap_scan() and the
// pagemap_scan_ops callbacks) and mm/pagewalk.c (walk_page_range() down to walk_pmd_range()),
// one PTE at a time. Arguments are u64 (bigint) as the user passes them.

import type { PmScanArg } from '../../src/uapi';
import { VEC_ADDR } from '../../src/scenario/program';
import {
  PAGE_SIZE,
  PGDIR_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  TASK_SIZE,
  addrEnd,
  blockOf,
  pgdIndexOf,
  pudIndexOf,
  NotModelled,
  type HugePte,
  type Pte,
  type RefMm,
  type Vma,
} from './mm';
import { uffdWpRange, userfaultfdWp, userfaultfdWpAsync, userfaultfdWpUseMarkers, type UffdCtx } from './userfaultfd';

export const PAGE_IS_WPALLOWED = 1 << 0;
export const PAGE_IS_WRITTEN = 1 << 1;
export const PAGE_IS_FILE = 1 << 2;
export const PAGE_IS_PRESENT = 1 << 3;
export const PAGE_IS_SWAPPED = 1 << 4;
export const PAGE_IS_PFNZERO = 1 << 5;
export const PAGE_IS_HUGE = 1 << 6;
export const PAGE_IS_SOFT_DIRTY = 1 << 7;
export const PAGE_IS_GUARD = 1 << 8;
const PM_SCAN_CATEGORIES = 0x1ffn;
export const PM_SCAN_WP_MATCHING = 1;
export const PM_SCAN_CHECK_WPASYNC = 2;
const PM_SCAN_FLAGS = 3n;
const U64 = (1n << 64n) - 1n;
/** PAGEMAP_WALK_SIZE >> PAGE_SHIFT */
const BOUNCE_BUFFER_ENTRIES = 512;
/** The harness maps this many page_region entries at VEC_ADDR; beyond is unmapped (EFAULT). */
const VEC_CAPACITY = 1 << 20;

/** The two 6.18.y back-ports that change what anonymous memory reports (spec §0, B1 and B2). */
export interface ScanSemantics {
  /** B1: a pte_none entry is PAGE_IS_WRITTEN. */
  noneIsWritten: boolean;
  /** B2: a hole in a VM_UFFD_WP VMA is PAGE_IS_WRITTEN. */
  holeIsWrittenInUffdWp: boolean;
  /** B3: a hugetlb page is whole when huge_page_size() of it is covered (before: 2 MiB). */
  hugetlbWpWholeSize: boolean;
  /** B4: WP_MATCHING over a hugetlb hole installs a marker (before: the caller hangs). */
  hugetlbHoleWp: boolean;
}

export interface Region {
  start: number;
  end: number;
  categories: number;
}

export interface ScanResult {
  ret: number;
  errno: 'EINVAL' | 'EFAULT' | 'EPERM' | null;
  /** null: not written back (argument errors). */
  walkEnd: number | null;
  /** What was copied to the user array. */
  regions: Region[];
}

/** The validated arguments, as in struct pm_scan_arg after pagemap_scan_get_args(). */
interface Args {
  flags: number;
  start: number;
  end: number;
  vecLen: bigint;
  /** ULONG_MAX when the caller passed 0. */
  maxPages: bigint;
  categoryInverted: number;
  categoryMask: number;
  categoryAnyofMask: number;
  returnMask: number;
}

/** access_ok() on x86-64: the range lies in the user half and does not wrap. */
function accessOk(addr: bigint, size: bigint): boolean {
  const sum = (addr + size) & U64;
  return sum <= BigInt(TASK_SIZE) && sum >= addr;
}

/** pagemap_scan_get_args() */
function pagemapScanGetArgs(arg: PmScanArg): Args | 'EINVAL' | 'EFAULT' {
  if (arg.size !== 96n) return 'EINVAL';
  if (arg.flags & ~PM_SCAN_FLAGS) return 'EINVAL';
  if ((arg.category_inverted | arg.category_mask | arg.category_anyof_mask | arg.return_mask) & ~PM_SCAN_CATEGORIES) return 'EINVAL';
  // untagged_addr() is the identity on x86-64 without LAM.
  if (arg.start % BigInt(PAGE_SIZE) !== 0n) return 'EINVAL';
  if (!accessOk(arg.start, (arg.end - arg.start) & U64)) return 'EFAULT';
  if (arg.vec === 0n && arg.vec_len !== 0n) return 'EINVAL';
  const vecBytes = arg.vec_len * 24n > U64 ? U64 : arg.vec_len * 24n; // size_mul() saturates
  if (arg.vec !== 0n && !accessOk(arg.vec, vecBytes)) return 'EFAULT';
  const end = (arg.end + BigInt(PAGE_SIZE) - 1n) & ~BigInt(PAGE_SIZE - 1);
  return {
    flags: Number(arg.flags),
    start: Number(arg.start),
    end: Number(end),
    vecLen: arg.vec_len,
    maxPages: arg.max_pages === 0n ? U64 : arg.max_pages,
    categoryInverted: Number(arg.category_inverted),
    categoryMask: Number(arg.category_mask),
    categoryAnyofMask: Number(arg.category_anyof_mask),
    returnMask: Number(arg.return_mask),
  };
}

const ENOSPC = 'ENOSPC';
type WalkRet = 0 | 'ENOSPC' | 'EPERM';

/** struct pagemap_scan_private plus the walk over one mm. */
class PagemapScan {
  curVmaCategory = 0;
  /** vec_buf; null when vec_len == 0. */
  vecBuf: Region[] | null = null;
  vecBufLen = 0;
  vecBufIndex = 0;
  foundPages = 0n;
  /** arg.walk_end; 0 means unset. */
  walkEnd = 0;
  vecLen: bigint;
  /** Where the next flush goes (p->vec_out), as an index into the user array. */
  vecOut = 0;
  readonly copied: Region[] = [];

  constructor(
    readonly mm: RefMm,
    readonly ctx: UffdCtx | null,
    readonly arg: Args,
    readonly sem: ScanSemantics,
  ) {
    this.vecLen = arg.vecLen;
  }

  /** pagemap_scan_init_bounce_buffer() */
  initBounceBuffer(): void {
    if (this.arg.vecLen === 0n) return;
    this.vecBufLen = Number(this.arg.vecLen < BigInt(BOUNCE_BUFFER_ENTRIES) ? this.arg.vecLen : BigInt(BOUNCE_BUFFER_ENTRIES));
    // kmalloc_array(): only buf[0] is initialised; the other slots are filled before being read.
    this.vecBuf = [{ start: 0, end: 0, categories: 0 }];
  }

  get wpMatching(): boolean {
    return (this.arg.flags & PM_SCAN_WP_MATCHING) !== 0;
  }

  // ---- classification and filtering -------------------------------------------------------

  /** pagemap_page_category() for a slot of an existing PTE table (undefined: pte_none). */
  pageCategory(pte: Pte | undefined): number {
    if (pte === undefined) return this.sem.noneIsWritten ? PAGE_IS_WRITTEN : 0;
    switch (pte.kind) {
      case 'page':
      case 'zero': {
        // pte_present(): PRESENT; WRITTEN unless pte_uffd_wp(); the zero page is PFNZERO and,
        // having no normal page, never FILE. Anonymous pages are never FILE either.
        let c = PAGE_IS_PRESENT;
        if (!pte.wp) c |= PAGE_IS_WRITTEN;
        if (pte.kind === 'zero') c |= PAGE_IS_PFNZERO;
        return c;
      }
      case 'marker':
        // is_swap_pte(): a marker is a swap-format entry; pte_swp_uffd_wp_any() holds.
        return PAGE_IS_SWAPPED;
      case 'guard':
        return PAGE_IS_SWAPPED | PAGE_IS_GUARD | (pte.wp ? 0 : PAGE_IS_WRITTEN);
      case 'swap':
        // A genuine swap entry: never FILE; WRITTEN unless pte_swp_uffd_wp().
        return PAGE_IS_SWAPPED | (pte.wp ? 0 : PAGE_IS_WRITTEN);
      case 'file':
        // A shmem page-cache page: not anonymous.
        return PAGE_IS_PRESENT | PAGE_IS_FILE | (pte.wp ? 0 : PAGE_IS_WRITTEN);
    }
  }

  /** pagemap_scan_is_interesting_page() */
  isInterestingPage(categories: number): boolean {
    const c = categories ^ this.arg.categoryInverted;
    if ((c & this.arg.categoryMask) !== this.arg.categoryMask) return false;
    if (this.arg.categoryAnyofMask && !(c & this.arg.categoryAnyofMask)) return false;
    return true;
  }

  /** pagemap_scan_is_interesting_vma() */
  isInterestingVma(categories: number): boolean {
    const required = this.arg.categoryMask & PAGE_IS_WPALLOWED;
    return ((categories ^ this.arg.categoryInverted) & required) === required;
  }

  // ---- output ----------------------------------------------------------------------------

  /** pagemap_scan_push_range() */
  pushRange(categories: number, addr: number, end: number): boolean {
    const buf = this.vecBuf!;
    let cur = buf[this.vecBufIndex];
    if (addr === cur.end && categories === cur.categories) {
      cur.end = end;
      return true;
    }
    if (cur.end) {
      if (this.vecBufIndex >= this.vecBufLen - 1) return false;
      cur = buf[++this.vecBufIndex] ??= { start: 0, end: 0, categories: 0 };
    }
    cur.start = addr;
    cur.end = end;
    cur.categories = categories;
    return true;
  }

  /** pagemap_scan_output(): returns the (possibly cut) end and 0 or ENOSPC. */
  output(categories: number, addr: number, end: number): { end: number; ret: 0 | 'ENOSPC' } {
    if (!this.vecBuf) return { end, ret: 0 };
    categories &= this.arg.returnMask;
    let nPages = BigInt((end - addr) / PAGE_SIZE);
    let ret: 0 | 'ENOSPC' = 0;
    const total = this.foundPages + nPages;
    if (total > U64 || total > this.arg.maxPages) {
      const tooMuch = total - this.arg.maxPages;
      end -= Number(tooMuch) * PAGE_SIZE;
      nPages -= tooMuch;
      ret = ENOSPC;
    }
    if (!this.pushRange(categories, addr, end)) {
      end = addr;
      nPages = 0n;
      ret = ENOSPC;
    }
    this.foundPages += nPages;
    if (ret) this.walkEnd = end;
    return { end, ret };
  }

  /** pagemap_scan_flush_buffer(): returns the number copied, or EFAULT. */
  flushBuffer(): number | 'EFAULT' {
    const buf = this.vecBuf;
    if (!buf) return 0;
    let n = this.vecBufIndex;
    if (buf[n].end !== buf[n].start) n++;
    if (!n) return 0;
    // copy_to_user(): the harness maps VEC_CAPACITY entries at VEC_ADDR.
    if (this.vecOut + n > VEC_CAPACITY) return 'EFAULT';
    for (let i = 0; i < n; i++) this.copied.push({ ...buf[i] });
    this.vecLen -= BigInt(n);
    this.vecOut += n;
    this.vecBufIndex = 0;
    if (BigInt(this.vecBufLen) > this.vecLen) this.vecBufLen = Number(this.vecLen);
    buf[0].start = buf[0].end = 0;
    return n;
  }

  // ---- the walk (mm/pagewalk.c with pagemap_scan_ops) -------------------------------------

  /** walk_page_range(): VMAs in address order; gaps go to pte_hole() with no VMA (nothing). */
  walkPageRange(start: number, end: number): WalkRet {
    for (const vma of this.mm.vmasIntersecting(start, end)) {
      const s = Math.max(start, vma.start);
      const e = Math.min(end, vma.end);
      const test = this.testWalk(vma); // walk_page_test()
      if (test === 'EPERM') return test;
      if (test === 'skip') continue;
      const err = vma.huge ? this.walkHugetlbRange(vma, s, e) : this.walkPgdRange(vma, s, e); // __walk_page_range()
      if (err) return err;
    }
    return 0;
  }

  /** pagemap_scan_test_walk() */
  testWalk(vma: Vma): 'walk' | 'skip' | 'EPERM' {
    const wpAllowed = userfaultfdWpAsync(vma, this.ctx) && userfaultfdWpUseMarkers(vma, this.ctx);
    if (!wpAllowed) {
      if (this.arg.flags & PM_SCAN_CHECK_WPASYNC) return 'EPERM';
      if (this.arg.flags & PM_SCAN_WP_MATCHING) return 'skip';
    }
    // (VM_PFNMAP never occurs here; VM_SOFTDIRTY is not compiled in.)
    const vmaCategory = wpAllowed ? PAGE_IS_WPALLOWED : 0;
    if (!this.isInterestingVma(vmaCategory)) return 'skip';
    this.curVmaCategory = vmaCategory;
    return 'walk';
  }

  /** walk_pgd_range(): one entry per 512 GiB (the p4d level is folded into it). */
  walkPgdRange(vma: Vma, addr: number, end: number): WalkRet {
    do {
      const next = addrEnd(addr, end, PGDIR_SIZE);
      const err = this.mm.pudTables.has(pgdIndexOf(addr)) ? this.walkPudRange(vma, addr, next) : this.pteHole(vma, addr, next);
      if (err) return err;
      addr = next;
    } while (addr !== end);
    return 0;
  }

  /** walk_pud_range(): one entry per 1 GiB. */
  walkPudRange(vma: Vma, addr: number, end: number): WalkRet {
    do {
      const next = addrEnd(addr, end, PUD_SIZE);
      const err = this.mm.pmdTables.has(pudIndexOf(addr)) ? this.walkPmdRange(vma, addr, next) : this.pteHole(vma, addr, next);
      if (err) return err;
      addr = next;
    } while (addr !== end);
    return 0;
  }

  /** walk_pmd_range(): one entry per 2 MiB; pmd_entry() does the PTEs itself (no pte_entry). */
  walkPmdRange(vma: Vma, addr: number, end: number): WalkRet {
    do {
      const next = addrEnd(addr, end, PMD_SIZE);
      const b = blockOf(addr);
      const err = this.mm.pteTables.has(b) || this.mm.thps.has(b) ? this.pmdEntry(vma, addr, next) : this.pteHole(vma, addr, next);
      if (err) return err;
      addr = next;
    } while (addr !== end);
    return 0;
  }

  /** pagemap_scan_pte_hole() */
  pteHole(vma: Vma, addr: number, end: number): WalkRet {
    let categories = this.curVmaCategory;
    if (this.sem.holeIsWrittenInUffdWp && userfaultfdWp(vma) && !vma.huge) categories |= PAGE_IS_WRITTEN;
    if (!this.isInterestingPage(categories)) return 0;
    const o = this.output(categories, addr, end);
    if (addr === o.end) return o.ret;
    if (!this.wpMatching) return o.ret;
    if (vma.huge && !this.sem.hugetlbHoleWp) throw new NotModelled('WP_MATCHING over a hugetlb hole before B4 (the caller hangs in an unkillable sleep)');
    // hugetlb (B4): the table of this one huge page is allocated and a marker installed.
    uffdWpRange(this.mm, this.ctx, vma, addr, o.end, true);
    return o.ret;
  }

  /** walk_hugetlb_range(): one huge page at a time; no table for it: pte_hole(). */
  walkHugetlbRange(vma: Vma, addr: number, end: number): WalkRet {
    const size = vma.huge!.size;
    do {
      const slot = addr - ((addr - vma.start) % size);
      const next = Math.min(slot + size, end); // hugetlb_entry_end()
      const err = this.mm.hugeTableExists(vma, slot) ? this.hugetlbEntry(vma, slot, addr, next) : this.pteHole(vma, addr, next);
      if (err) return err;
      addr = next;
    } while (addr !== end);
    return 0;
  }

  /** pagemap_hugetlb_category() */
  hugetlbCategory(pte: HugePte | undefined): number {
    let c = PAGE_IS_HUGE;
    if (pte === undefined) return c; // not WRITTEN
    if (pte.kind === 'marker') return c | PAGE_IS_SWAPPED; // pte_swp_uffd_wp_any()
    c |= PAGE_IS_PRESENT;
    if (!pte.wp) c |= PAGE_IS_WRITTEN;
    if (pte.file) c |= PAGE_IS_FILE; // !PageAnon(): the shared file's page
    return c;
  }

  /** pagemap_scan_hugetlb_entry() for [start, end) of the huge page at slot. */
  hugetlbEntry(vma: Vma, slot: number, start: number, end: number): WalkRet {
    const pte = this.mm.hugeGet(slot);
    const categories = this.curVmaCategory | this.hugetlbCategory(pte);
    if (!this.isInterestingPage(categories)) return 0;
    const o = this.output(categories, start, end);
    // Without WP_MATCHING: "go the short route".
    if (!this.wpMatching) return o.ret;
    if (start === o.end) return o.ret;
    if (!(categories & PAGE_IS_WRITTEN)) return o.ret;
    // B3: huge_page_size() (before: HPAGE_SIZE, so a 1 GiB page was always partial).
    const whole = this.sem.hugetlbWpWholeSize ? vma.huge!.size : PMD_SIZE;
    if (o.end !== start + whole) {
      // "Partial HugeTLB page WP isn't possible."
      this.backoutRange(start, o.end);
      this.walkEnd = start;
      return 0;
    }
    // make_uffd_wp_huge_pte(): only a present page gets here (WRITTEN)
    if (pte?.kind === 'page') pte.wp = true;
    return o.ret;
  }

  /** pagemap_scan_backout_range() */
  backoutRange(addr: number, end: number): void {
    if (!this.vecBuf) return; // "check p->vec_buf for NULL" (6.17)
    const cur = this.vecBuf[this.vecBufIndex];
    if (cur.start !== addr) cur.end = addr;
    else cur.start = cur.end = 0;
    this.foundPages -= BigInt((end - addr) / PAGE_SIZE);
  }

  /** pagemap_scan_thp_entry(): -ENOENT when there is no PMD leaf (or after splitting it). */
  thpEntry(vma: Vma, start: number, end: number): WalkRet | 'ENOENT' {
    const thp = this.mm.thpGet(start);
    if (!thp) return 'ENOENT';
    // pagemap_thp_category()
    let categories = this.curVmaCategory | PAGE_IS_PRESENT | PAGE_IS_HUGE;
    if (!thp.wp) categories |= PAGE_IS_WRITTEN;
    if (thp.zero) categories |= PAGE_IS_PFNZERO;
    if (!this.isInterestingPage(categories)) return 0;
    const o = this.output(categories, start, end);
    if (start === o.end) return o.ret;
    if (!this.wpMatching) return o.ret;
    if (!(categories & PAGE_IS_WRITTEN)) return o.ret;
    if (o.end !== start + PMD_SIZE) {
      // "Break huge page into small pages if the WP operation needs to be performed on a
      // portion of the huge page."
      this.mm.splitHugePmd(start);
      this.backoutRange(start, o.end);
      return 'ENOENT'; // "Report as if there was no THP"
    }
    // make_uffd_wp_pmd(): pmd_mkuffd_wp() also write-protects it.
    thp.wp = true;
    thp.writable = false;
    return o.ret;
  }

  /** pagemap_scan_pmd_entry() */
  pmdEntry(vma: Vma, start: number, end: number): WalkRet {
    const t = this.thpEntry(vma, start, end);
    if (t !== 'ENOENT') return t;
    let ret: WalkRet = 0;
    const isWp = (pte: Pte | undefined): boolean =>
      // (pte_present(ptent) && pte_uffd_wp(ptent)) || pte_swp_uffd_wp_any(ptent)
      pte !== undefined && (pte.kind === 'marker' || pte.wp);

    if (this.wpMatching && !this.vecBuf) {
      // Fast path for performing exclusive WP: masks, max_pages and WRITTEN do not matter.
      for (let addr = start; addr !== end; addr += PAGE_SIZE) {
        const pte = this.mm.pteGet(addr);
        if (isWp(pte)) continue;
        this.makeUffdWpPte(addr, pte);
      }
      return 0;
    }

    const a = this.arg;
    if (!a.categoryAnyofMask && !a.categoryInverted && a.categoryMask === PAGE_IS_WRITTEN && a.returnMask === PAGE_IS_WRITTEN) {
      // Fast path when only PAGE_IS_WRITTEN is asked for.
      for (let addr = start; addr < end; addr += PAGE_SIZE) {
        const pte = this.mm.pteGet(addr);
        if (isWp(pte)) continue;
        const o = this.output(this.curVmaCategory | PAGE_IS_WRITTEN, addr, addr + PAGE_SIZE);
        ret = o.ret;
        if (o.end === addr) break;
        if (!this.wpMatching) continue;
        this.makeUffdWpPte(addr, pte);
      }
      return ret;
    }

    for (let addr = start; addr !== end; addr += PAGE_SIZE) {
      const pte = this.mm.pteGet(addr);
      const categories = this.curVmaCategory | this.pageCategory(pte);
      if (!this.isInterestingPage(categories)) continue;
      const o = this.output(categories, addr, addr + PAGE_SIZE);
      ret = o.ret;
      if (o.end === addr) break;
      if (!this.wpMatching) continue;
      if (!(categories & PAGE_IS_WRITTEN)) continue;
      this.makeUffdWpPte(addr, pte);
    }
    return ret;
  }

  /** make_uffd_wp_pte() */
  makeUffdWpPte(addr: number, pte: Pte | undefined): void {
    if (pte === undefined) {
      this.mm.pteSet(addr, { kind: 'marker' });
      return;
    }
    switch (pte.kind) {
      case 'page':
        // pte_mkuffd_wp() also write-protects the entry
        this.mm.pteSet(addr, { ...pte, wp: true, writable: false });
        return;
      case 'zero':
        this.mm.pteSet(addr, { kind: 'zero', wp: true });
        return;
      case 'file':
        this.mm.pteSet(addr, { kind: 'file', wp: true });
        return;
      case 'guard':
        // is_swap_pte(): pte_swp_mkuffd_wp() on the guard marker
        this.mm.pteSet(addr, { kind: 'guard', wp: true });
        return;
      case 'marker':
        return; // pte_swp_mkuffd_wp() of a uffd-wp marker changes nothing visible
      case 'swap':
        this.mm.pteSet(addr, { kind: 'swap', wp: true }); // pte_swp_mkuffd_wp()
        return;
    }
  }
}

/** do_pagemap_scan() */
export function doPagemapScan(mm: RefMm, ctx: UffdCtx | null, arg: PmScanArg, sem: ScanSemantics): ScanResult {
  const args = pagemapScanGetArgs(arg);
  if (typeof args === 'string') return { ret: -1, errno: args, walkEnd: null, regions: [] };
  if (arg.vec !== 0n && arg.vec !== VEC_ADDR) throw new Error('reference: only vec = VEC_ADDR or NULL is modelled');
  const p = new PagemapScan(mm, ctx, args, sem);
  p.initBounceBuffer();

  let nRangesOut = 0;
  let ret: WalkRet | 'EFAULT' = 0;
  for (let walkStart = args.start; walkStart < args.end; walkStart = p.walkEnd) {
    ret = p.walkPageRange(walkStart, args.end);
    const nOut = p.flushBuffer();
    if (nOut === 'EFAULT') ret = 'EFAULT';
    else nRangesOut += nOut;
    if (ret !== ENOSPC) break;
    if (p.vecLen === 0n || p.foundPages === args.maxPages) break;
  }
  const walkEnd = p.walkEnd || args.end;
  if (ret === 0 || ret === ENOSPC) return { ret: nRangesOut, errno: null, walkEnd, regions: p.copied };
  return { ret: -1, errno: ret, walkEnd, regions: p.copied };
}
