// Compiling the C harness (replay.c) on first use, into a per-user cache keyed by a hash of the
// source. Nothing is compiled at install time and no binary is ever written into the source tree.

import { spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EnvironmentError } from '../errors';

/** Flags every harness program is compiled with (export-c output must build with these too). */
export const C_FLAGS = ['-std=c11', '-O2', '-Wall', '-Werror'];

/**
 * The C source of the harness. From src/kernel/*.ts (ts-node, ts-jest) and from dist/kernel/*.js
 * alike, `../../src/kernel/replay.c` is the shipped file (package.json "files": src/kernel/*.c).
 */
export function replaySourcePath(): string {
  return path.join(__dirname, '../../src/kernel/replay.c');
}

export function readReplaySource(): string {
  const file = replaySourcePath();
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new EnvironmentError(`cannot read the kernel harness source ${file}: ${(e as Error).message}`);
  }
}

/** `$XDG_CACHE_HOME/pagemap-scan`, else `~/.cache/pagemap-scan`. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'pagemap-scan');
}

export interface CompilerInfo {
  /** The command, e.g. `cc`. */
  command: string;
  /** First line of `--version`. */
  version: string;
}

let compilerCache: CompilerInfo | undefined;

/** The system C compiler: `cc`, else `gcc` (or the one given). EnvironmentError when none runs. */
export function findCompiler(preferred?: string): CompilerInfo {
  if (!preferred && compilerCache) return compilerCache;
  const candidates = preferred ? [preferred] : ['cc', 'gcc'];
  for (const command of candidates) {
    const r = spawnSync(command, ['--version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) continue;
    const info = { command, version: (r.stdout.split('\n')[0] ?? '').trim() };
    if (!preferred) compilerCache = info;
    return info;
  }
  throw new EnvironmentError(
    `no C compiler found (tried ${candidates.join(', ')}): running scenarios on the real kernel ` +
      'compiles a small C helper on first use; install gcc or clang',
  );
}

export interface CompileOptions {
  /** Compiler command; default `cc`, else `gcc`. */
  compiler?: string;
  /** Where compiled helpers are cached; default {@link defaultCacheDir}. */
  cacheDir?: string;
}

function ensureDir(dir: string): string {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.accessSync(dir, fs.constants.W_OK);
    return dir;
  } catch {
    // An unwritable home (e.g. a sandboxed CI user): fall back to a per-user temp dir.
    const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
    const fallback = path.join(os.tmpdir(), `pagemap-scan-cache-${uid}`);
    try {
      fs.mkdirSync(fallback, { recursive: true, mode: 0o700 });
      return fallback;
    } catch (e) {
      throw new EnvironmentError(`cannot create a cache directory (${dir}): ${(e as Error).message}`);
    }
  }
}

/**
 * Compile `source` into `<cacheDir>/<name>-<hash>` unless it is already there, and return the
 * path of the executable. The hash covers the source, the flags and the compiler's version line.
 * The executable is written under a temporary name and renamed into place, so concurrent callers
 * never see a half-written file. A compile failure is an EnvironmentError carrying the compiler's
 * diagnostics.
 */
export function compileC(source: string, name: string, opts: CompileOptions = {}): string {
  const compiler = findCompiler(opts.compiler);
  const hash = createHash('sha256')
    .update(source)
    .update('\0' + C_FLAGS.join(' ') + '\0' + compiler.command + '\0' + compiler.version)
    .digest('hex')
    .slice(0, 16);
  const dir = ensureDir(opts.cacheDir ?? defaultCacheDir());
  const exe = path.join(dir, `${name}-${hash}`);
  if (isExecutable(exe)) return exe;

  const tmp = path.join(dir, `.${name}-${hash}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const src = `${tmp}.c`;
  try {
    fs.writeFileSync(src, source);
    const r = spawnSync(compiler.command, [...C_FLAGS, '-o', tmp, src], { encoding: 'utf8' });
    if (r.error) {
      throw new EnvironmentError(`cannot run the C compiler ${compiler.command}: ${r.error.message}`);
    }
    if (r.status !== 0) {
      throw new EnvironmentError(
        `compiling the kernel harness (${name}) with ${compiler.command} failed:\n` +
          (r.stderr || r.stdout || `exit status ${r.status}`).trimEnd(),
      );
    }
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, exe);
    return exe;
  } finally {
    fs.rmSync(src, { force: true });
    fs.rmSync(tmp, { force: true });
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The compiled replay harness (compiled on first use). */
export function replayBinary(opts: CompileOptions = {}): string {
  if (process.platform !== 'linux') {
    throw new EnvironmentError(`running on the kernel needs Linux (this is ${process.platform})`);
  }
  return compileC(readReplaySource(), 'replay', opts);
}
