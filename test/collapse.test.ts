// MADV_COLLAPSE and the huge page-cache folios it leaves (src/mm/khugepaged.ts, the huge-folio
// cases of src/mm/filemap.ts): small programs whose expect blocks were recorded from Linux
// 6.18.44 with `pagemap-scan record` (never copied from the emulator). Each pins one rule of
// madvise_collapse(), collapse_file(), collapse_pte_mapped_thp() or of what later faults, MADV_COLD,
// MADV_PAGEOUT and PAGEMAP_SCAN do with a PMD-size folio in the page cache. The bundled
// scenarios/thp-collapse-shmem-*.yaml are checked by scenarios.test.ts.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { testScenario } from '../src/cli/test';

const CASES: [string, string][] = [
  [
    "an empty block of the file (SCAN_TRUNCATED) fails with EINVAL and stops the walk: the next block is not collapsed",
    `name: j
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - read: {addr: s+600p, size: 1}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+512p, []]
        - [s+512p, s+600p, [WRITTEN]]
        - [s+600p, s+601p, [WRITTEN, FILE, PRESENT]]
        - [s+601p, s+1024p, [WRITTEN]]
`,
  ],
  [
    "anonymous: a guard marker fails the block (the swap-in cannot fault it) and stops the walk",
    `name: an
steps:
  - mmap: {addr: 0x100000400000, size: 6M, kind: anon, name: s}
  - write: {addr: s+1p, size: 1}
  - write: {addr: s+600p, size: 1}
  - write: {addr: s+1100p, size: 1}
  - madvise: {addr: s+10p, size: 1p, advice: guard-install}
  - madvise: {addr: s+512p, size: 2M, advice: dontneed}
  - madvise: {addr: s, size: 6M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - pagemap_scan: {start: s, end: s+6M, return_mask: 0x1ff}
    expect:
      ret: 9
      walk_end: s+1536p
      regions:
        - [s, s+1p, [WRITTEN]]
        - [s+1p, s+2p, [WRITTEN, PRESENT]]
        - [s+2p, s+10p, [WRITTEN]]
        - [s+10p, s+11p, [WRITTEN, SWAPPED, GUARD]]
        - [s+11p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
        - [s+1024p, s+1100p, [WRITTEN]]
        - [s+1100p, s+1101p, [WRITTEN, PRESENT]]
        - [s+1101p, s+1536p, [WRITTEN]]
`,
  ],
  [
    "anonymous: an empty PMD slot (SCAN_PMD_NONE) stops the walk; a none PTE in a uffd-armed VMA is EBUSY",
    `name: an2
steps:
  - mmap: {addr: 0x100000400000, size: 6M, kind: anon, name: s}
  - write: {addr: s+1p, size: 1}
  - write: {addr: s+600p, size: 1}
  - write: {addr: s+1100p, size: 1}
  - madvise: {addr: s, size: 2M, advice: dontneed}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - uffd_open: {}
  - uffd_register: {addr: s+1024p, size: 2M}
  - write: {addr: s+1030p, size: 1}
  - uffd_writeprotect: {addr: s+1030p, size: 1p, wp: true}
  - write: {addr: s+1p, size: 1}
  - madvise: {addr: s+1024p, size: 2M, advice: collapse}
    may_fail: true
    expect: {errno: EBUSY}
  - pagemap_scan: {start: s, end: s+6M, return_mask: 0x1ff}
    expect:
      ret: 10
      walk_end: s+1536p
      regions:
        - [s, s+1p, [WRITTEN]]
        - [s+1p, s+2p, [WRITTEN, PRESENT]]
        - [s+2p, s+600p, [WRITTEN]]
        - [s+600p, s+601p, [WRITTEN, PRESENT]]
        - [s+601p, s+1024p, [WRITTEN]]
        - [s+1024p, s+1030p, [WPALLOWED, WRITTEN]]
        - [s+1030p, s+1031p, [WPALLOWED, PRESENT]]
        - [s+1031p, s+1100p, [WPALLOWED, WRITTEN]]
        - [s+1100p, s+1101p, [WPALLOWED, WRITTEN, PRESENT]]
        - [s+1101p, s+1536p, [WPALLOWED, WRITTEN]]
`,
  ],
  [
    "shmem with a MISSING registration: holes are EBUSY and stop the walk, after the small pages were unmapped",
    `name: g
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: shared-anon, name: s}
  - read: {addr: s+1p, size: 1}
  - write: {addr: s+512p, size: 2M}
  - uffd_open: {features: []}
  - uffd_register: {addr: s, size: 4M, mode: [MISSING]}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
    expect: {errno: EBUSY}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, [WRITTEN, FILE, PRESENT]]
  - madvise: {addr: s+512p, size: 2M, advice: collapse}
    may_fail: true
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, [WRITTEN, FILE, PRESENT, HUGE]]
`,
  ],
  [
    "private memfd with an anon_vma: a guard marker keeps the table (SCAN_PTE_NON_PRESENT); after its removal the PMD goes in",
    `name: e
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-private, name: s}
  - read: {addr: s+1p, size: 1}
  - write: {addr: s+700p, size: 1}
  - madvise: {addr: s+10p, size: 1p, advice: guard-install}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 5
      walk_end: s+1024p
      regions:
        - [s, s+10p, [WRITTEN]]
        - [s+10p, s+11p, [WRITTEN, SWAPPED, GUARD]]
        - [s+11p, s+700p, [WRITTEN]]
        - [s+700p, s+701p, [WRITTEN, PRESENT]]
        - [s+701p, s+1024p, [WRITTEN]]
  - madvise: {addr: s+10p, size: 1p, advice: guard-remove}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN, FILE, PRESENT, HUGE]]
        - [s+512p, s+700p, [WRITTEN]]
        - [s+700p, s+701p, [WRITTEN, PRESENT]]
        - [s+701p, s+1024p, [WRITTEN]]
`,
  ],
  [
    "a partial MADV_DONTNEED only unmaps the PMD of a huge folio; a read maps it by a PMD again; a partial MADV_PAGEOUT splits the folio",
    `name: k
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - read: {addr: s+1p, size: 1}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
  - madvise: {addr: s+3p, size: 1p, advice: dontneed}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, []]
  - read: {addr: s+30p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN, FILE, PRESENT, HUGE]]
        - [s+512p, s+1024p, []]
  - madvise: {addr: s+3p, size: 1p, advice: pageout}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, []]
  - write: {addr: s+40p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+40p, [WRITTEN]]
        - [s+40p, s+41p, [WRITTEN, FILE, PRESENT]]
        - [s+41p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "a MADV_PAGEOUT over the whole PMD leaves the folio huge (no swap): the next read maps a PMD",
    `name: p1
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - read: {addr: s+1p, size: 1}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
  - madvise: {addr: s, size: 2M, advice: pageout}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, []]
  - read: {addr: s+30p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN, FILE, PRESENT, HUGE]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "MADV_PAGEOUT of one page of a PTE-mapped huge folio splits it: every page of it is unmapped",
    `name: p3
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-private, name: s}
  - write: {addr: s+5p, size: 1}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - read: {addr: s+200p, size: 1}
  - madvise: {addr: s+300p, size: 1p, advice: pageout}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+5p, [WRITTEN]]
        - [s+5p, s+6p, [WRITTEN, PRESENT]]
        - [s+6p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
  - read: {addr: s+400p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 6
      walk_end: s+1024p
      regions:
        - [s, s+5p, [WRITTEN]]
        - [s+5p, s+6p, [WRITTEN, PRESENT]]
        - [s+6p, s+400p, [WRITTEN]]
        - [s+400p, s+416p, [WRITTEN, FILE, PRESENT]]
        - [s+416p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "a VMA split over a huge folio: faults map fault-around windows only (the folio is not within the VMA)",
    `name: p4
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - read: {addr: s+1p, size: 1}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
  - mprotect: {addr: s+256p, size: 1M, prot: r}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, []]
  - read: {addr: s+30p, size: 1}
  - read: {addr: s+300p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 6
      walk_end: s+1024p
      regions:
        - [s, s+16p, [WRITTEN]]
        - [s+16p, s+32p, [WRITTEN, FILE, PRESENT]]
        - [s+32p, s+288p, [WRITTEN]]
        - [s+288p, s+304p, [WRITTEN, FILE, PRESENT]]
        - [s+304p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
  - mprotect: {addr: s+256p, size: 1M, prot: rw}
  - madvise: {addr: s, size: 2M, advice: dontneed}
  - write: {addr: s+40p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN, FILE, PRESENT, HUGE]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "MADV_COLD of part of a huge folio (PMD- or PTE-mapped) splits it",
    `name: q1
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - read: {addr: s+1p, size: 1}
  - read: {addr: s+600p, size: 1}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
  - madvise: {addr: s+3p, size: 1p, advice: cold}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, []]
        - [s+512p, s+1024p, [WRITTEN, FILE, PRESENT, HUGE]]
  - read: {addr: s+30p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+16p, [WRITTEN]]
        - [s+16p, s+32p, [WRITTEN, FILE, PRESENT]]
        - [s+32p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, [WRITTEN, FILE, PRESENT, HUGE]]
  - madvise: {addr: s+512p, size: 2M, advice: dontneed}
  - read: {addr: s+520p, size: 1}
  - madvise: {addr: s+600p, size: 1p, advice: cold}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+16p, [WRITTEN]]
        - [s+16p, s+32p, [WRITTEN, FILE, PRESENT]]
        - [s+32p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "a shared write next to mapped pages of a huge folio maps one page (finish_fault() needs_fallback)",
    `name: q2
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - uffd_open: {}
  - uffd_register: {addr: s, size: 4M}
  - read: {addr: s+4p, size: 1}
  - uffd_writeprotect: {addr: s+4p, size: 1p, wp: true}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - uffd_unregister: {addr: s, size: 4M}
  - read: {addr: s+9p, size: 1}
  - madvise: {addr: s+20p, size: 20p, advice: dontneed}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 4
      walk_end: s+1024p
      regions:
        - [s, s+20p, [WRITTEN, FILE, PRESENT]]
        - [s+20p, s+40p, [WRITTEN]]
        - [s+40p, s+512p, [WRITTEN, FILE, PRESENT]]
        - [s+512p, s+1024p, []]
  - write: {addr: s+30p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 6
      walk_end: s+1024p
      regions:
        - [s, s+20p, [WRITTEN, FILE, PRESENT]]
        - [s+20p, s+30p, [WRITTEN]]
        - [s+30p, s+31p, [WRITTEN, FILE, PRESENT]]
        - [s+31p, s+40p, [WRITTEN]]
        - [s+40p, s+512p, [WRITTEN, FILE, PRESENT]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "a huge folio whose table was kept: once the table is gone a read maps the PMD, even in a uffd-wp VMA",
    `name: m
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: shared-anon, name: s}
  - uffd_open: {}
  - uffd_register: {addr: s, size: 4M}
  - read: {addr: s+4p, size: 1}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, [WPALLOWED, WRITTEN]]
  - madvise: {addr: s, size: 2M, advice: dontneed}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, [WPALLOWED, WRITTEN]]
  - read: {addr: s+7p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WPALLOWED, WRITTEN, FILE, PRESENT, HUGE]]
        - [s+512p, s+1024p, [WPALLOWED, WRITTEN]]
  - uffd_unregister: {addr: s, size: 4M}
  - madvise: {addr: s, size: 2M, advice: dontneed}
  - read: {addr: s+9p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 2
      walk_end: s+1024p
      regions:
        - [s, s+512p, [WRITTEN, FILE, PRESENT, HUGE]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "a partial WP_MATCHING over a file THP unmaps it and write-protects the hole with markers",
    `name: w
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - read: {addr: s+1p, size: 1}
  - madvise: {addr: s, size: 2M, advice: collapse}
    may_fail: true
  - uffd_open: {}
  - uffd_register: {addr: s, size: 4M}
  - pagemap_scan: {start: s+100p, end: s+600p, flags: [WP_MATCHING], return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+600p
      regions:
        - [s+100p, s+600p, [WPALLOWED, WRITTEN]]
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 3
      walk_end: s+1024p
      regions:
        - [s, s+100p, [WPALLOWED, WRITTEN]]
        - [s+100p, s+600p, [WPALLOWED, SWAPPED]]
        - [s+600p, s+1024p, [WPALLOWED, WRITTEN]]
`,
  ],
  [
    "a disk file: MADV_COLLAPSE is EINVAL (no CONFIG_READ_ONLY_THP_FOR_FS), even over less than a block",
    `name: fs
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: file-shared, name: s}
  - read: {addr: s+1p, size: 1}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - madvise: {addr: s+10p, size: 20p, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 3
      walk_end: s+1024p
      regions:
        - [s, s+16p, [WRITTEN, FILE, PRESENT]]
        - [s+16p, s+512p, [WRITTEN]]
        - [s+512p, s+1024p, []]
`,
  ],
  [
    "a shared write into an all-none table maps the whole huge folio, and so does a read (fault-around)",
    `name: p2
steps:
  - mmap: {addr: 0x100000400000, size: 4M, kind: memfd-shared, name: s}
  - uffd_open: {}
  - uffd_register: {addr: s, size: 4M}
  - read: {addr: s+4p, size: 1}
  - read: {addr: s+600p, size: 1}
  - madvise: {addr: s, size: 4M, advice: collapse}
    may_fail: true
    expect: {errno: EINVAL}
  - uffd_unregister: {addr: s, size: 4M}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, [WRITTEN]]
  - write: {addr: s+40p, size: 1}
  - read: {addr: s+700p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, [WRITTEN, FILE, PRESENT]]
  - write: {addr: s+50p, size: 1}
  - pagemap_scan: {start: s, end: s+4M, return_mask: 0x1ff}
    expect:
      ret: 1
      walk_end: s+1024p
      regions:
        - [s, s+1024p, [WRITTEN, FILE, PRESENT]]
`,
  ],
];

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'collapse-test-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.each(CASES)('%s', (what, yaml) => {
  test('the emulator gives the recorded kernel answers', () => {
    const name = yaml.match(/^name: (\S+)/m)![1];
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, `# ${what}\n${yaml}`);
    const results = testScenario(file);
    expect(results.length).toBeGreaterThan(0);
    expect(results.filter((t) => t.error || t.mismatches.length)).toEqual([]);
  });
});
