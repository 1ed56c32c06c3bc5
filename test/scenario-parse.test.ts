// parseScenario: good input → resolved Program fields; bad input → the exact located message.

import { PROFILES } from '../src/profiles';
import { InputError } from '../src/errors';
import { parseScenario } from '../src/scenario';
import { VEC_ADDR, type Op, type Program } from '../src/scenario/program';
import { U64_MAX } from '../src/uapi';

const FILE = 'scenarios/x.yaml';
/** Step 1 of most cases: a 64-page anonymous mapping named heap at 0x10000000. */
const HEAP = 0x10000000n;
const PRELUDE = 'steps:\n  - mmap: { addr: 0x10000000, size: 64p, kind: anon, name: heap }\n';
/** A scenario whose step 2 is `step` (YAML, indented as a list item). */
const withStep = (step: string) => `${PRELUDE}  - ${step}\n`;

const parse = (text: string, file = FILE): Program => parseScenario(text, file);
const op2 = (step: string): Op => parse(withStep(step)).steps[1].op;
const messageOf = (text: string): string => {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as InputError).message;
  }
  throw new Error('parsed without error');
};

const ZERO_ARG = {
  size: 96n,
  flags: 0n,
  start: 0n,
  end: 0n,
  walk_end: 0n,
  vec: VEC_ADDR,
  vec_len: 1024n,
  max_pages: 0n,
  category_inverted: 0n,
  category_mask: 0n,
  category_anyof_mask: 0n,
  return_mask: 0n,
};

const KNOWN = Object.keys(PROFILES).join(', ');

describe('ops of the contract table', () => {
  const cases: [string, Op][] = [
    [
      'mmap: { addr: 0x100000000000, size: 2M, kind: shared-anon, prot: rx, name: stack }',
      { op: 'mmap', addr: 0x100000000000n, size: 0x200000n, kind: 'shared-anon', prot: 5, name: 'stack' },
    ],
    ['mmap: { addr: 0x20000000, size: 4K, kind: pfnmap }', { op: 'mmap', addr: 0x20000000n, size: 4096n, kind: 'pfnmap', prot: 3 }],
    ['mmap: { addr: heap+64p, size: 1G, kind: hugetlb-1g, prot: none }', { op: 'mmap', addr: HEAP + 0x40000n, size: 1n << 30n, kind: 'hugetlb-1g', prot: 0 }],
    ['munmap: { addr: heap+4K, size: 8K }', { op: 'munmap', addr: HEAP + 4096n, size: 8192n }],
    ['mprotect: { addr: heap, size: 4K, prot: r }', { op: 'mprotect', addr: HEAP, size: 4096n, prot: 1 }],
    ['mprotect: { addr: heap, size: 4K, prot: xwr }', { op: 'mprotect', addr: HEAP, size: 4096n, prot: 7 }],
    ['mprotect: { addr: heap, size: 4K, prot: none }', { op: 'mprotect', addr: HEAP, size: 4096n, prot: 0 }],
    ['madvise: { addr: heap, size: 2p, advice: guard-install }', { op: 'madvise', addr: HEAP, size: 8192n, advice: 'guard-install' }],
    ['read: { addr: heap, size: 4p }', { op: 'read', addr: HEAP, size: 16384n, stride: 4096n }],
    ['write: { addr: heap+1, size: 4p, stride: 2p }', { op: 'write', addr: HEAP + 1n, size: 16384n, stride: 8192n }],
    ['write: { addr: heap, size: 4p, stride: 1 }', { op: 'write', addr: HEAP, size: 16384n, stride: 1n }],
    ['uffd_open: {}', { op: 'uffd_open', features: (1n << 15n) | (1n << 13n) }],
    ['uffd_open:', { op: 'uffd_open', features: (1n << 15n) | (1n << 13n) }],
    ['uffd_open: { features: [WP_HUGETLBFS_SHMEM, MOVE] }', { op: 'uffd_open', features: (1n << 12n) | (1n << 16n) }],
    ['uffd_open: { features: [] }', { op: 'uffd_open', features: 0n }],
    ['uffd_open: { features: 0x80000000 }', { op: 'uffd_open', features: 0x80000000n }],
    ['uffd_open: { features: [WP_ASYNC, 0x40000] }', { op: 'uffd_open', features: (1n << 15n) | 0x40000n }],
    ['uffd_close:', { op: 'uffd_close' }],
    ['uffd_close: {}', { op: 'uffd_close' }],
    ['uffd_register: { addr: heap, size: 64p }', { op: 'uffd_register', addr: HEAP, size: 0x40000n, mode: 2n }],
    ['uffd_register: { addr: heap, size: 64p, mode: [MISSING, WP, MINOR] }', { op: 'uffd_register', addr: HEAP, size: 0x40000n, mode: 7n }],
    ['uffd_register: { addr: heap, size: 64p, mode: 8 }', { op: 'uffd_register', addr: HEAP, size: 0x40000n, mode: 8n }],
    ['uffd_unregister: { addr: heap, size: 64p }', { op: 'uffd_unregister', addr: HEAP, size: 0x40000n }],
    ['uffd_writeprotect: { addr: heap, size: 1p, wp: true }', { op: 'uffd_writeprotect', addr: HEAP, size: 4096n, wp: true }],
    ['uffd_writeprotect: { addr: heap, size: 1p, wp: false }', { op: 'uffd_writeprotect', addr: HEAP, size: 4096n, wp: false }],
    ['clear_refs: { value: 4 }', { op: 'clear_refs', value: 4n }],
    ['pagemap_scan:', { op: 'pagemap_scan', arg: ZERO_ARG }],
    ['pagemap_scan: {}', { op: 'pagemap_scan', arg: ZERO_ARG }],
    [
      'pagemap_scan: { start: heap, end: heap+64p, flags: [WP_MATCHING, CHECK_WPASYNC], vec_len: 0 }',
      { op: 'pagemap_scan', arg: { ...ZERO_ARG, start: HEAP, end: HEAP + 0x40000n, flags: 3n, vec_len: 0n } },
    ],
    [
      'pagemap_scan: { category_inverted: [PRESENT], category_mask: [PRESENT, GUARD], category_anyof_mask: [WRITTEN, FILE], return_mask: [SOFT_DIRTY, HUGE] }',
      { op: 'pagemap_scan', arg: { ...ZERO_ARG, category_inverted: 8n, category_mask: 0x108n, category_anyof_mask: 6n, return_mask: 0xc0n } },
    ],
    [
      // Bad bits pass through unchanged: the kernel model answers EINVAL.
      'pagemap_scan: { category_mask: 0x200, flags: 4, return_mask: "0x3ff", category_inverted: 0, category_anyof_mask: [] }',
      { op: 'pagemap_scan', arg: { ...ZERO_ARG, category_mask: 0x200n, flags: 4n, return_mask: 0x3ffn } },
    ],
    [
      'pagemap_scan: { vec: null, vec_len: 5, max_pages: 7, size: 0 }',
      { op: 'pagemap_scan', arg: { ...ZERO_ARG, vec: 0n, vec_len: 5n, max_pages: 7n, size: 0n } },
    ],
    [
      'pagemap_scan: { size: 18446744073709551615, vec_len: 0xffffffffffffffff, max_pages: "0xFFFFFFFFFFFFFFFF", start: 18446744073709551615, end: "18446744073709551615" }',
      { op: 'pagemap_scan', arg: { ...ZERO_ARG, size: U64_MAX, vec_len: U64_MAX, max_pages: U64_MAX, start: U64_MAX, end: U64_MAX } },
    ],
  ];
  test.each(cases)('%s', (step, op) => {
    expect(op2(step)).toEqual(op);
  });

  test.each([
    'anon',
    'shared-anon',
    'file-private',
    'file-shared',
    'memfd-private',
    'memfd-shared',
    'hugetlb',
    'hugetlb-shared',
    'hugetlb-1g',
    'pfnmap',
  ])('mmap kind %s', (kind) => {
    expect(op2(`mmap: { addr: 0x40000000, size: 2M, kind: ${kind} }`)).toMatchObject({ op: 'mmap', kind });
  });

  test.each([
    'normal',
    'random',
    'sequential',
    'willneed',
    'dontneed',
    'free',
    'remove',
    'dontfork',
    'dofork',
    'hugepage',
    'nohugepage',
    'cold',
    'pageout',
    'populate-read',
    'populate-write',
    'collapse',
    'guard-install',
    'guard-remove',
  ])('madvise advice %s', (advice) => {
    expect(op2(`madvise: { addr: heap, size: 4K, advice: ${advice} }`)).toMatchObject({ op: 'madvise', advice });
  });

  test('block style, as in the contract example', () => {
    const p = parse(
      PRELUDE +
        [
          '  - pagemap_scan:',
          '      start: heap',
          '      end: heap+64p',
          '      flags: [WP_MATCHING]',
          '      category_mask: [WRITTEN]',
          '      return_mask: [WRITTEN]',
          '      vec_len: 256',
          '    expect:',
          '      ret: 1',
          '      walk_end: heap+64p',
          '      regions:',
          '        - [heap+5p, heap+7p, [WRITTEN]]',
          '',
        ].join('\n'),
    );
    expect(p.steps[1]).toEqual({
      index: 2,
      op: {
        op: 'pagemap_scan',
        arg: { ...ZERO_ARG, start: HEAP, end: HEAP + 0x40000n, flags: 1n, category_mask: 2n, return_mask: 2n, vec_len: 256n },
      },
      mayFail: false,
      where: { file: FILE, line: 3, col: 5 },
      expect: {
        ret: 1n,
        walk_end: HEAP + 0x40000n,
        regions: [{ start: HEAP + 5n * 4096n, end: HEAP + 7n * 4096n, categories: 2 }],
        where: { file: FILE, line: 10, col: 5 },
      },
    });
  });
});

describe('value forms', () => {
  const sizes: [string, bigint][] = [
    ['4096', 4096n],
    ['0x1000', 4096n],
    ['"4096"', 4096n],
    ['"0x1000"', 4096n],
    ['0', 0n],
    ['4K', 4096n],
    ['2M', 2n << 20n],
    ['1G', 1n << 30n],
    ['1T', 1n << 40n],
    ['64p', 64n * 4096n],
    ['0x10p', 16n * 4096n],
    ['16777215T', 16777215n << 40n],
    ['18446744073709551615', U64_MAX],
  ];
  test.each(sizes)('size %s', (text, bytes) => {
    expect(op2(`munmap: { addr: 0, size: ${text} }`)).toEqual({ op: 'munmap', addr: 0n, size: bytes });
  });

  const addresses: [string, bigint][] = [
    ['0x7fff0000', 0x7fff0000n],
    ['2147418112', 0x7fff0000n],
    ['"0x7fff0000"', 0x7fff0000n],
    ['heap', HEAP],
    ['heap+5p', HEAP + 5n * 4096n],
    ['heap-5p', HEAP - 5n * 4096n],
    ['heap+1', HEAP + 1n],
    ['heap+0x10', HEAP + 16n],
    ['heap-0x10000000', 0n],
    ['"heap + 2M"', HEAP + (2n << 20n)],
    ['heap+1T', HEAP + (1n << 40n)],
  ];
  test.each(addresses)('address %s', (text, addr) => {
    expect(op2(`munmap: { addr: ${text}, size: 4K }`)).toEqual({ op: 'munmap', addr, size: 4096n });
  });

  test('name arithmetic up to 2^64-1 exactly', () => {
    const p = parse('steps:\n  - mmap: { addr: 0xfffffffffffff000, size: 4K, kind: anon, name: top }\n  - munmap: { addr: top+0xfff, size: 1 }\n');
    expect(p.steps[1].op).toEqual({ op: 'munmap', addr: U64_MAX, size: 1n });
  });

  test('prot letters in any order', () => {
    expect(op2('mprotect: { addr: heap, size: 4K, prot: wr }')).toMatchObject({ prot: 3 });
    expect(op2('mprotect: { addr: heap, size: 4K, prot: x }')).toMatchObject({ prot: 4 });
  });
});

describe('program fields', () => {
  test('defaults', () => {
    const p = parse('steps: []\n', 'dir/sub/write-watch.yaml');
    expect(p).toEqual({
      name: 'write-watch',
      file: 'dir/sub/write-watch.yaml',
      kernel: '6.18.44',
      system: { swap: false, thp: 'madvise' },
      steps: [],
      names: new Map(),
    });
  });

  test('everything given', () => {
    const p = parse(
      [
        'name: my-scenario',
        'description: |',
        '  two lines',
        '  of text',
        'kernel: 6.18.0',
        'system: { swap: on, thp: always, hugetlb_pages: { 2M: 4, 1G: 1 } }',
        'steps:',
        '  - mmap: { addr: 0x10000000, size: 64p, kind: anon, name: heap }',
        '  - mmap: { addr: heap+64p, size: 4p, kind: anon, name: next }',
        '  - mmap: { addr: 0x30000000, size: 2M, kind: hugetlb, prot: r }',
        '    may_fail: true',
        '    expect: { errno: ENOMEM }',
        '',
      ].join('\n'),
    );
    expect(p.name).toBe('my-scenario');
    expect(p.description).toBe('two lines\nof text\n');
    expect(p.kernel).toBe('6.18.0');
    expect(p.system).toEqual({ swap: true, thp: 'always', hugetlbPages: { '2M': 4, '1G': 1 } });
    expect(p.names).toEqual(new Map([['heap', HEAP], ['next', HEAP + 0x40000n]]));
    expect(p.steps.map((s) => [s.index, s.mayFail, s.where.line, s.where.col])).toEqual([
      [1, false, 8, 5],
      [2, false, 9, 5],
      [3, true, 10, 5],
    ]);
    expect(p.steps[2].expect).toEqual({ errno: 'ENOMEM', where: { file: FILE, line: 12, col: 5 } });
  });

  test.each([
    ['system: { swap: off, thp: never, hugetlb_pages: { 2M: 0 } }', { swap: false, thp: 'never', hugetlbPages: { '2M': 0 } }],
    ['system: { swap: true }', { swap: true, thp: 'madvise' }],
    ['system:', { swap: false, thp: 'madvise' }],
    ['system: { hugetlb_pages: {} }', { swap: false, thp: 'madvise', hugetlbPages: {} }],
    ['system: { read_ahead_kb: 128 }', { swap: false, thp: 'madvise', readAheadKb: 128 }],
  ])('%s', (line, system) => {
    expect(parse(`${line}\nsteps: []\n`).system).toEqual(system);
  });

  test('file names without extension, or with several dots', () => {
    expect(parse('steps: []\n', 'noext').name).toBe('noext');
    expect(parse('steps: []\n', 'a/b.c.yml').name).toBe('b.c');
  });

  test('a byte order mark and CRLF line ends are fine', () => {
    const p = parse('\uFEFFsteps:\r\n  - uffd_close:\r\n');
    expect(p.steps[0]).toMatchObject({ op: { op: 'uffd_close' }, where: { line: 2, col: 5 } });
  });

  test('anchors and aliases within the limit', () => {
    const p = parse(PRELUDE + '  - munmap: &r { addr: heap, size: 4K }\n  - mprotect: { addr: heap, size: 4K, prot: r }\n  - munmap: *r\n');
    expect(p.steps[3].op).toEqual({ op: 'munmap', addr: HEAP, size: 4096n });
  });

  test('__proto__ and constructor are plain (rejected) keys and pollute nothing', () => {
    expect(() => parse('__proto__: { polluted: 1 }\nsteps: []\n')).toThrow(InputError);
    expect(() => parse(withStep('mmap: { constructor: { polluted: 1 }, addr: 0, size: 4K, kind: anon }'))).toThrow(InputError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });
});

describe('expectations', () => {
  const scan = (expectYaml: string) => parse(withStep(`pagemap_scan:\n    expect: ${expectYaml}`)).steps[1].expect;
  const other = (expectYaml: string) => parse(withStep(`uffd_close:\n    expect: ${expectYaml}`)).steps[1].expect;
  const where = { file: FILE, line: 4, col: 5 };

  test.each([
    ['{ ret: 0 }', { ret: 0n }],
    ['{ ret: -1, errno: EINVAL }', { ret: -1n, errno: 'EINVAL' }],
    ['{ errno: null, walk_end: null }', { errno: null, walk_end: null }],
    ['{ walk_end: heap+64p }', { walk_end: HEAP + 0x40000n }],
    ['{ walk_end: 0x10001000 }', { walk_end: 0x10001000n }],
    ['{ regions: [] }', { regions: [] }],
    [
      '{ regions: [[heap, heap+1p, [WRITTEN, PRESENT]], [0x10002000, "0x10003000", 0x1ff], [heap+4p, heap+5p, []]] }',
      {
        regions: [
          { start: HEAP, end: HEAP + 4096n, categories: 10 },
          { start: 0x10002000n, end: 0x10003000n, categories: 0x1ff },
          { start: HEAP + 4n * 4096n, end: HEAP + 5n * 4096n, categories: 0 },
        ],
      },
    ],
  ])('pagemap_scan expect %s', (yaml, expected) => {
    expect(scan(yaml)).toEqual({ ...expected, where });
  });

  test.each([
    ['{ ok: true }', { ok: true }],
    ['{ errno: EEXIST }', { errno: 'EEXIST' }],
    ['{ errno: SIGSEGV }', { errno: 'SIGSEGV' }],
    ['{ errno: null }', { errno: null }],
  ])('other expect %s', (yaml, expected) => {
    expect(other(yaml)).toEqual({ ...expected, where });
  });
});

describe('bad input → one located message', () => {
  const VALID_OPS =
    'valid ops: mmap, munmap, mprotect, madvise, read, write, uffd_open, uffd_close, uffd_register, uffd_unregister, uffd_writeprotect, clear_refs, pagemap_scan; a step may also have may_fail, expect';
  const CATEGORIES = 'valid: WPALLOWED, WRITTEN, FILE, PRESENT, SWAPPED, PFNZERO, HUGE, SOFT_DIRTY, GUARD, or an integer';
  const U64 = 'expected a u64 (an integer 0..2^64-1, decimal or "0x..." hex)';
  const bomb = [
    'a: &a [x, x, x, x, x, x, x, x, x]',
    'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
    'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
    'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
    'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
    'steps: []',
    '',
  ].join('\n');

  const cases: [string, string, string][] = [
    // The file as a whole
    ['empty file', '', 'x.yaml:1:1: empty scenario; expected a mapping with at least `steps:`'],
    ['only a comment', '# nothing\n', 'x.yaml:1:1: empty scenario; expected a mapping with at least `steps:`'],
    ['only ---', '---\n', 'x.yaml:1:1: empty scenario; expected a mapping with at least `steps:`'],
    ['a list', '- mmap: {}\n', 'x.yaml:1:1: expected a mapping (name:, steps:, ...) at the top level'],
    ['a scalar', 'hello\n', 'x.yaml:1:1: expected a mapping (name:, steps:, ...) at the top level'],
    ['two documents', 'steps: []\n---\nsteps: []\n', 'x.yaml:2:1: a second YAML document; a scenario file holds exactly one'],
    ['binary', 'steps: []\n# \u0000\u0001\n', 'x.yaml:2:3: binary data (control character U+0000); a scenario is YAML text'],
    ['syntax error', 'steps: [\n', 'x.yaml:2:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['tab indentation', 'steps:\n\t- uffd_close:\n', 'x.yaml:2:1: YAML: Tabs are not allowed as indentation'],
    ['custom tag', 'steps: !foo []\n', 'x.yaml:1:8: Unresolved tag: !foo (scenarios use plain YAML values)'],
    ['non-string key', 'steps: []\n3: x\n', 'x.yaml:2:1: expected a string key, got 3'],
    ['alias bomb', bomb, 'x.yaml:3:8: more than 100 aliases'],
    ['self alias', 'steps: &s [*s]\n', 'x.yaml:1:12: alias *s refers to itself'],
    ['unknown alias', 'steps: *nope\n', 'x.yaml:1:8: unknown alias *nope'],
    ['deep nesting', 'steps: ' + '['.repeat(5000) + ']'.repeat(5000) + '\n', 'x.yaml:1:40: nested more than 32 levels deep'],
    ['duplicate top key', 'steps: []\nsteps: []\n', 'x.yaml:2:1: duplicate key "steps"'],
    ['duplicate op key', withStep('mmap: { addr: 1, addr: 2, size: 4K, kind: anon }'), 'x.yaml:3:22: duplicate key "addr"'],
    // Top level
    ['__proto__', '__proto__: { polluted: 1 }\nsteps: []\n', 'x.yaml:1:1: __proto__: unknown key; valid keys for the top level: name, description, kernel, system, steps'],
    ['unknown top key', 'steps: []\nstep: []\n', 'x.yaml:2:1: step: unknown key; valid keys for the top level: name, description, kernel, system, steps'],
    ['missing steps', 'name: x\n', 'x.yaml:1:1: steps: missing (required)'],
    ['steps not a list', 'steps: {}\n', 'x.yaml:1:8: steps: expected a list of steps, got a mapping'],
    ['name not a string', 'name: 5\nsteps: []\n', 'x.yaml:1:7: name: expected a string, got 5'],
    ['kernel unknown', 'kernel: "5.0"\nsteps: []\n', `x.yaml:1:9: kernel: unknown kernel profile "5.0"; known profiles: ${KNOWN}`],
    ['kernel as a float', 'kernel: 6.19\nsteps: []\n', `x.yaml:1:9: kernel: unknown kernel profile 6.19; known profiles: ${KNOWN}`],
    ['swap', 'system: { swap: maybe }\nsteps: []\n', 'x.yaml:1:17: system.swap: expected on or off, got "maybe"'],
    ['thp', 'system: { thp: sometimes }\nsteps: []\n', 'x.yaml:1:16: system.thp: unknown thp mode "sometimes"; valid: always, madvise, never'],
    ['pool size', 'system: { hugetlb_pages: { 4M: 1 } }\nsteps: []\n', 'x.yaml:1:28: system.hugetlb_pages.4M: unknown key; valid keys for hugetlb_pages: 2M, 1G'],
    ['pool count', 'system: { hugetlb_pages: { 2M: -1 } }\nsteps: []\n', 'x.yaml:1:32: system.hugetlb_pages.2M: expected a count (an integer 0..2^53-1), got -1'],
    ['read_ahead_kb below a page', 'system: { read_ahead_kb: 2 }\nsteps: []\n', 'x.yaml:1:26: system.read_ahead_kb: expected a read_ahead_kb of 4..1048576 (at least one page), got 2'],
    // Steps
    ['unknown op', withStep('mmapp: { addr: 1 }'), `x.yaml:3:5: step 2: unknown op "mmapp"; ${VALID_OPS}`],
    ['constructor as op', withStep('constructor: {}'), `x.yaml:3:5: step 2: unknown op "constructor"; ${VALID_OPS}`],
    ['two ops', withStep('munmap: { addr: heap, size: 4K }\n    mprotect: { addr: heap, size: 4K, prot: r }'), 'x.yaml:4:5: step 2: a second op in one step (after munmap); write one op per step'],
    ['no op', withStep('may_fail: true'), `x.yaml:3:5: step 2: a step without an op; ${VALID_OPS}`],
    ['step not a mapping', withStep('uffd_close'), 'x.yaml:3:5: step 2: expected a step like `- mmap: {...}`, got "uffd_close"'],
    ['op not a mapping', withStep('mmap: [1, 2]'), 'x.yaml:3:11: mmap: expected a mapping, got a list of 2'],
    ['unknown key', withStep('mmap: { addr: 1, size: 4K, kind: anon, flags: 3 }'), 'x.yaml:3:44: mmap.flags: unknown key; valid keys for mmap: addr, size, kind, prot, name'],
    ['__proto__ in an op', withStep('mmap: { addr: 1, size: 4K, kind: anon, __proto__: {} }'), 'x.yaml:3:44: mmap.__proto__: unknown key; valid keys for mmap: addr, size, kind, prot, name'],
    ['a key on uffd_close', withStep('uffd_close: { fd: 3 }'), 'x.yaml:3:19: uffd_close.fd: uffd_close takes no keys'],
    ['walk_end is not an input', withStep('pagemap_scan: { walk_end: 0 }'), 'x.yaml:3:21: pagemap_scan.walk_end: unknown key; valid keys for pagemap_scan: start, end, flags, vec_len, max_pages, category_inverted, category_mask, category_anyof_mask, return_mask, size, vec'],
    ['missing key', withStep('mmap: { addr: 1, size: 4K }'), 'x.yaml:3:11: mmap.kind: missing (required)'],
    ['op with no keys', withStep('mmap:'), 'x.yaml:3:5: mmap.addr: missing (required)'],
    ['missing wp', withStep('uffd_writeprotect: { addr: heap, size: 4K }'), 'x.yaml:3:24: uffd_writeprotect.wp: missing (required)'],
    ['wp not a boolean', withStep('uffd_writeprotect: { addr: heap, size: 4K, wp: 1 }'), 'x.yaml:3:52: uffd_writeprotect.wp: expected true or false, got 1'],
    ['may_fail: yes', withStep('uffd_close:\n    may_fail: yes'), 'x.yaml:4:15: uffd_close.may_fail: expected true or false, got "yes"'],
    // Enumerations
    ['kind', withStep('mmap: { addr: 1, size: 4K, kind: anonymous }'), 'x.yaml:3:38: mmap.kind: unknown kind "anonymous"; valid: anon, shared-anon, file-private, file-shared, memfd-private, memfd-shared, hugetlb, hugetlb-shared, hugetlb-1g, pfnmap'],
    ['advice', withStep('madvise: { addr: heap, size: 4K, advice: constructor }'), 'x.yaml:3:46: madvise.advice: unknown advice "constructor"; valid: normal, random, sequential, willneed, dontneed, free, remove, dontfork, dofork, hugepage, nohugepage, cold, pageout, populate-read, populate-write, collapse, guard-install, guard-remove'],
    ['category', withStep('pagemap_scan: { category_mask: [WRITEN] }'), `x.yaml:3:37: pagemap_scan.category_mask[0]: unknown category "WRITEN"; ${CATEGORIES}`],
    ['category with prefix', withStep('pagemap_scan: { category_mask: [PRESENT, PAGE_IS_WRITTEN] }'), `x.yaml:3:46: pagemap_scan.category_mask[1]: unknown category "PAGE_IS_WRITTEN" (write it without the PAGE_IS_ prefix); ${CATEGORIES}`],
    ['category in lower case', withStep('pagemap_scan: { return_mask: [written] }'), `x.yaml:3:35: pagemap_scan.return_mask[0]: unknown category "written" (names are upper case); ${CATEGORIES}`],
    ['category not in a list', withStep('pagemap_scan: { category_mask: WRITTEN }'), 'x.yaml:3:36: pagemap_scan.category_mask: expected a list of category names or an integer, got "WRITTEN" (write [WRITTEN])'],
    ['flag', withStep('pagemap_scan: { flags: [WP] }'), 'x.yaml:3:29: pagemap_scan.flags[0]: unknown flag "WP"; valid: WP_MATCHING, CHECK_WPASYNC, or an integer'],
    ['feature', withStep('uffd_open: { features: [UFFD_FEATURE_WP_ASYNC] }'), 'x.yaml:3:29: uffd_open.features[0]: unknown feature "UFFD_FEATURE_WP_ASYNC" (write it without the UFFD_FEATURE_ prefix); valid: PAGEFAULT_FLAG_WP, EVENT_FORK, EVENT_REMAP, EVENT_REMOVE, MISSING_HUGETLBFS, MISSING_SHMEM, EVENT_UNMAP, SIGBUS, THREAD_ID, MINOR_HUGETLBFS, MINOR_SHMEM, EXACT_ADDRESS, WP_HUGETLBFS_SHMEM, WP_UNPOPULATED, POISON, WP_ASYNC, MOVE, or an integer'],
    ['mode', withStep('uffd_register: { addr: heap, size: 4K, mode: [WRITEPROTECT] }'), 'x.yaml:3:51: uffd_register.mode[0]: unknown mode "WRITEPROTECT"; valid: MISSING, WP, MINOR, or an integer'],
    ['errno', withStep('uffd_close:\n    expect: { errno: EWHAT }'), 'x.yaml:4:22: uffd_close.expect.errno: unknown errno "EWHAT"; valid: EPERM, EACCES, ENOENT, EINTR, EBADF, EAGAIN, ENOMEM, EFAULT, EBUSY, ERANGE, EEXIST, EINVAL, ENOSPC, ENOTTY, EOVERFLOW, SIGSEGV, SIGBUS'],
    ['prot', withStep('mprotect: { addr: heap, size: 4K, prot: rwrw }'), 'x.yaml:3:45: mprotect.prot: expected prot "none" or letters of "rwx" (like r, rw, rx), got "rwrw"'],
    ['empty prot', withStep('mprotect: { addr: heap, size: 4K, prot: "" }'), 'x.yaml:3:45: mprotect.prot: expected prot "none" or letters of "rwx" (like r, rw, rx), got ""'],
    // Numbers and sizes
    ['u64 max + 1', withStep('pagemap_scan: { max_pages: 18446744073709551616 }'), `x.yaml:3:32: pagemap_scan.max_pages: ${U64}, got 18446744073709551616`],
    ['u64 max + 1 in hex', withStep('pagemap_scan: { max_pages: "0x10000000000000000" }'), `x.yaml:3:32: pagemap_scan.max_pages: ${U64}, got "0x10000000000000000"`],
    ['negative', withStep('pagemap_scan: { vec_len: -1 }'), `x.yaml:3:30: pagemap_scan.vec_len: ${U64}, got -1`],
    ['float', withStep('pagemap_scan: { vec_len: 1.0 }'), `x.yaml:3:30: pagemap_scan.vec_len: ${U64}, got 1.0`],
    ['negative string', withStep('clear_refs: { value: "-4" }'), `x.yaml:3:26: clear_refs.value: ${U64}, got "-4"`],
    ['mask too big', withStep('pagemap_scan: { category_mask: 0x10000000000000000 }'), 'x.yaml:3:36: pagemap_scan.category_mask: expected a list of category names or a u64 (an integer 0..2^64-1, decimal or "0x..." hex), got 18446744073709551616'],
    ['list element too big', withStep('pagemap_scan: { flags: [WP_MATCHING, -1] }'), 'x.yaml:3:42: pagemap_scan.flags[1]: expected a flag name or a u64 (an integer 0..2^64-1, decimal or "0x..." hex), got -1'],
    ['size 4k', withStep('munmap: { addr: heap, size: 4k }'), 'x.yaml:3:33: munmap.size: expected a size like 4K, 2M, 64p, got "4k"'],
    ['size 4KB', withStep('munmap: { addr: heap, size: 4KB }'), 'x.yaml:3:33: munmap.size: expected a size like 4K, 2M, 64p, got "4KB"'],
    ['size -1', withStep('munmap: { addr: heap, size: -1 }'), 'x.yaml:3:33: munmap.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got -1'],
    ['size 1.5', withStep('munmap: { addr: heap, size: 1.5 }'), 'x.yaml:3:33: munmap.size: expected a size like 4K, 2M, 64p, got 1.5'],
    ['size 2^64 bytes', withStep('munmap: { addr: heap, size: 16777216T }'), 'x.yaml:3:33: munmap.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got "16777216T"'],
    ['stride 0', withStep('write: { addr: heap, size: 4K, stride: 0 }'), 'x.yaml:3:44: write.stride: expected a stride of at least 1 byte, got 0'],
    ['vec other than null', withStep('pagemap_scan: { vec: 0x1000 }'), 'x.yaml:3:26: pagemap_scan.vec: only null is accepted (a NULL array); omit vec for the output array, got 4096'],
    // Addresses and names
    ['address syntax', withStep('munmap: { addr: heap*2, size: 4K }'), 'x.yaml:3:21: munmap.addr: expected an address (an integer, a mapping name, NAME+SIZE or NAME-SIZE), got "heap*2"'],
    ['address offset syntax', withStep('munmap: { addr: heap+5q, size: 4K }'), 'x.yaml:3:21: munmap.addr: expected a size like 4K, 2M, 64p after "heap+" in address "heap+5q"'],
    ['address above 2^64-1', withStep('munmap: { addr: 18446744073709551616, size: 4K }'), 'x.yaml:3:21: munmap.addr: expected an address (an integer, a mapping name, NAME+SIZE or NAME-SIZE) within 0..2^64-1, got 18446744073709551616'],
    ['unknown name', withStep('munmap: { addr: stack, size: 4K }'), 'x.yaml:3:21: munmap.addr: unknown mapping name "stack"; defined so far: heap'],
    ['no name defined yet', 'steps:\n  - munmap: { addr: heap, size: 4K }\n', 'x.yaml:2:21: munmap.addr: unknown mapping name "heap"; no mmap has defined a name yet'],
    ['name used before its mmap', withStep('munmap: { addr: stack, size: 4K }') + '  - mmap: { addr: 0x20000000, size: 4K, kind: anon, name: stack }\n', 'x.yaml:3:21: munmap.addr: mapping name "stack" is used before step 3 defines it'],
    ['mmap at its own name', 'steps:\n  - mmap: { addr: me+4K, size: 4K, kind: anon, name: me }\n', 'x.yaml:2:19: mmap.addr: mapping name "me" is defined by this mmap, it cannot give its own address'],
    ['name redefined', withStep('mmap: { addr: 0x20000000, size: 4K, kind: anon, name: heap }'), 'x.yaml:3:59: mmap.name: mapping name "heap" is already defined by step 1'],
    ['name syntax', withStep('mmap: { addr: 0x20000000, size: 4K, kind: anon, name: my-heap }'), 'x.yaml:3:59: mmap.name: expected a mapping name (letters, digits and _, not starting with a digit), got "my-heap"'],
    ['name below 0', withStep('munmap: { addr: heap-0x10000001, size: 4K }'), 'x.yaml:3:21: munmap.addr: heap-0x10000001 = 0x10000000 - 0x10000001 is below 0'],
    ['name above 2^64-1', 'steps:\n  - mmap: { addr: 0xfffffffffffff000, size: 4K, kind: anon, name: top }\n  - pagemap_scan: { start: top, end: top+1p }\n', 'x.yaml:3:38: pagemap_scan.end: top+1p = 0x10000000000000000 is above 2^64-1'],
    // Expectations
    ['empty scan expect', withStep('pagemap_scan:\n    expect: {}'), 'x.yaml:4:13: pagemap_scan.expect: expected at least one of ret, errno, walk_end, regions'],
    ['ok on a scan', withStep('pagemap_scan:\n    expect: { ok: true }'), 'x.yaml:4:15: pagemap_scan.expect.ok: unknown key; valid keys for a pagemap_scan expect: ret, errno, walk_end, regions, hang'],
    ['ret on another op', withStep('uffd_close:\n    expect: { ret: 0 }'), 'x.yaml:4:15: uffd_close.expect.ret: unknown key; valid keys for expect: errno, ok, userfault, hang'],
    ['ok: false', withStep('uffd_close:\n    expect: { ok: false }'), 'x.yaml:4:19: uffd_close.expect.ok: expected true (to expect a failure, write errno: NAME), got false'],
    ['ok and errno', withStep('uffd_close:\n    expect: { ok: true, errno: EINVAL }'), 'x.yaml:4:13: uffd_close.expect: expected either errno: NAME or ok: true'],
    ['ret -2', withStep('pagemap_scan:\n    expect: { ret: -2 }'), `x.yaml:4:20: pagemap_scan.expect.ret: expected -1 or a u64 (an integer 0..2^64-1, decimal or "0x..." hex), got -2`],
    ['region too short', withStep('pagemap_scan:\n    expect:\n      regions:\n        - [heap, heap+1p]'), 'x.yaml:6:11: pagemap_scan.expect.regions[0]: expected a region [start, end, [CATEGORIES]], got a list of 2'],
    ['region categories out of range', withStep('pagemap_scan:\n    expect:\n      regions:\n        - [heap, heap+1p, 0x200]'), 'x.yaml:6:27: pagemap_scan.expect.regions[0][2]: categories 0x200 has bits outside 0x1ff, which the kernel never reports'],
    ['region category name', withStep('pagemap_scan:\n    expect:\n      regions:\n        - [heap, heap+1p, [WRITTEN, BOGUS]]'), `x.yaml:6:37: pagemap_scan.expect.regions[0][2][1]: unknown category "BOGUS"; ${CATEGORIES}`],
    ['region unknown name', withStep('pagemap_scan:\n    expect:\n      regions:\n        - [heap, stack, [WRITTEN]]'), 'x.yaml:6:18: pagemap_scan.expect.regions[0][1]: unknown mapping name "stack"; defined so far: heap'],
    ['walk_end unknown name', withStep('pagemap_scan:\n    expect: { walk_end: nowhere }'), 'x.yaml:4:25: pagemap_scan.expect.walk_end: unknown mapping name "nowhere"; defined so far: heap'],
  ];
  test.each(cases)('%s', (_label, text, message) => {
    expect(messageOf(text)).toBe(`scenarios/${message}`);
  });

  test('the earliest problem in the file is reported', () => {
    const text = 'steps:\n  - mmap: { addr: -1, size: 4k, kind: anonymous }\nkernel: nope\n';
    expect(messageOf(text)).toBe(`scenarios/x.yaml:2:19: mmap.addr: expected an address (an integer, a mapping name, NAME+SIZE or NAME-SIZE) within 0..2^64-1, got -1`);
  });

  test('a huge document is refused before parsing', () => {
    const text = 'steps: []\n' + '#'.repeat(10 * 1024 * 1024) + '\n';
    expect(messageOf(text)).toBe(`scenarios/x.yaml: too large (${text.length} characters; the limit is ${10 * 1024 * 1024})`);
  });

  test('errors carry location, path and detail separately', () => {
    try {
      parse(withStep('munmap: { addr: heap, size: 4k }'));
      throw new Error('parsed');
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      const err = e as InputError;
      expect(err.location).toEqual({ file: FILE, line: 3, col: 33 });
      expect(err.path).toBe('munmap.size');
      expect(err.detail).toBe('expected a size like 4K, 2M, 64p, got "4k"');
      expect(err.exitCode).toBe(2);
    }
  });
});

describe('resource limits', () => {
  test('deep block nesting is refused before composing', () => {
    const text = 'steps:\n' + Array.from({ length: 40 }, (_, i) => `${' '.repeat(2 * i + 2)}- `).join('\n') + 'x\n';
    expect(messageOf(text)).toBe('scenarios/x.yaml:33:65: nested more than 32 levels deep');
  });

  test('a deep flow nesting of a whole 10 MB is refused quickly', () => {
    const n = 5 * 1024 * 1024 - 10;
    const text = 'steps: ' + '['.repeat(n) + ']'.repeat(n);
    const t0 = Date.now();
    expect(messageOf(text)).toBe('scenarios/x.yaml:1:40: nested more than 32 levels deep');
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
