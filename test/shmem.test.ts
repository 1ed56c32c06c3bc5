// shmem page cache folios (src/mm/filemap.ts): what a hole punched in part of a PMD-size folio
// leaves, and what MADV_PAGEOUT and swap-in do to the cache entries. The folio boundaries were read
// on Linux 6.18.44 (this machine) with a probe that maps the memfd again, populates it and reads
// /proc/kpageflags (compound heads and tails) and mincore(); scenarios/shmem-*.yaml hold the
// PAGEMAP_SCAN-visible part of the same facts.

import { Process } from '../src/process';
import { PROFILES, DEFAULT_PROFILE } from '../src/profiles';
import { FOLIO, folioOrder } from '../src/mm/readahead';
import { SWAPPED_OUT } from '../src/mm/filemap';
import { PROT_READ, PROT_WRITE } from '../src/uapi';

const BASE = 0x100000400000n;
const P = 4096n;

function shmem(swap: boolean): Process {
  const p = new Process(PROFILES[DEFAULT_PROFILE], { swap, thp: 'madvise', hugetlbPages: {} } as never);
  expect(p.mmap(BASE, 1024n * P, 'memfd-shared', PROT_READ | PROT_WRITE)).toBeNull();
  expect(p.touch(BASE, 1024n * P, P, true, false)).toBeNull();
  expect(p.madvise(BASE, 512n * P, 'collapse')).toBeNull();
  return p;
}

/** The cached folios of the first 512 pages as "start+pages", as the probe prints them. */
function folios(p: Process): string[] {
  const m = p.mm.vmas[0].mapping!;
  const out: string[] = [];
  for (const run of m.cache.runs(0, 512)) {
    if (!(run.value & FOLIO)) continue;
    const n = 2 ** folioOrder(run.value);
    for (let f = run.start; f < run.end; f += n) out.push(`${f}+${n}`);
  }
  return out;
}

describe('a hole punched in part of a PMD-size shmem folio (truncate_inode_partial_folio)', () => {
  const cases: [number, number, string][] = [
    [100, 101, '0+64 64+32 96+4 101+1 102+2 104+8 112+16 128+128 256+256'],
    [100, 300, '0+64 64+32 96+4 300+1 301+1 302+2 304+16 320+64 384+128'],
    [100, 102, '0+64 64+32 96+4 102+1 103+1 104+8 112+16 128+128 256+256'],
    [0, 100, '100+1 101+1 102+2 104+8 112+16 128+128 256+256'],
    [412, 512, '0+256 256+128 384+16 400+8 408+4'],
    [200, 210, '0+128 128+64 192+8 210+1 211+1 212+4 216+8 224+32 256+256'],
    [0, 1, '1+1 2+2 4+4 8+8 16+16 32+32 64+64 128+128 256+256'],
    [511, 512, '0+256 256+128 384+64 448+32 480+16 496+8 504+4 508+2 510+1'],
    [300, 700, '0+256 256+32 288+8 296+4'],
  ];
  it.each(cases)('hole [%i, %i) splits it at both edges into the largest aligned folios', (lo, hi, want) => {
    const p = shmem(false);
    expect(p.madvise(BASE + BigInt(lo) * P, BigInt(hi - lo) * P, 'remove')).toBeNull();
    expect(folios(p).join(' ')).toBe(want);
    // The whole folio was unmapped (no PMD, no PTE of it), the rest of the file stays mapped.
    expect(p.mm.pmd.get(Number(BASE))).toBeUndefined();
    expect(p.mm.pte.map.any(p.mm.pte.index(Number(BASE)), p.mm.pte.index(Number(BASE) + 512 * 4096))).toBe(false);
  });
});

describe('MADV_PAGEOUT of a PMD-mapped shmem folio', () => {
  it('without swap unmaps it and leaves it cached whole', () => {
    const p = shmem(false);
    expect(p.madvise(BASE, 512n * P, 'pageout')).toBeNull();
    expect(p.mm.pmd.get(Number(BASE))).toBeUndefined();
    expect(folios(p)).toEqual(['0+512']);
  });

  it('with swap swaps all of it out; a fault reads back the faulting page only', () => {
    const p = shmem(true);
    expect(p.madvise(BASE, 512n * P, 'pageout')).toBeNull();
    const m = p.mm.vmas[0].mapping!;
    expect([...m.cache.runs(0, 512)].map((r) => [r.start, r.end, r.value])).toEqual([[0, 512, SWAPPED_OUT]]);
    expect(p.touch(BASE + 5n * P, 1n, P, false, false)).toBeNull();
    expect(folios(p)).toEqual(['5+1']);
  });

  it('in part splits it to small pages and reclaims none of them', () => {
    const p = shmem(true);
    expect(p.madvise(BASE, 256n * P, 'pageout')).toBeNull();
    expect(folios(p)).toHaveLength(512);
  });
});
