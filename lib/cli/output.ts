// Writing a tool's output the safe way (issue 15): never over one of the tool's inputs (real
// paths compared), never half-written (a temporary file in the same directory, then a rename;
// a whole output directory is built beside the old one and swapped in), never into a kernel
// file system such as /proc or /sys (where a write can hang or fail half-way), and every
// failure as one line naming the flag and the path — exit 2, no stack trace.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { CliError } from "./flags";

/** statfs magic numbers of file systems that are not a place for output. */
const KERNEL_FS: Record<number, string> = {
  0x9fa0: "proc",
  0x62656572: "sysfs",
  0x64626720: "debugfs",
  0x74726163: "tracefs",
  0x73636673: "securityfs",
  0x27e0eb: "cgroup",
  0x63677270: "cgroup2",
  0x1cd1: "devpts",
  0x6165676c: "pstorefs",
  0xcafe4a11: "bpf",
};

/** What a write needs to know: the flag that named the path and the tool's own inputs. */
export interface OutputTarget {
  /** The flag as the user typed it, e.g. `--out` or `--announce`. */
  flag: string;
  /** The path the user gave. */
  path: string;
  /** Files the tool reads; the output may never be one of them (or, for a directory, hold one). */
  inputs?: string[];
}

function fail(t: OutputTarget, why: string): never {
  throw new CliError(`${t.flag} ${t.path}: ${why}`);
}

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}${err.syscall ? ` on ${err.syscall}` : ""}` : String(e);
}

/** The real path of `p`, also when `p` (or some of its parents) does not exist yet. */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...missing.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) {
        return abs;
      }
      missing.push(path.basename(cur));
      cur = parent;
    }
  }
}

/**
 * Refuses when the output is one of the inputs, or (asDirectory) when an input lives inside the
 * output directory, which the swap would delete.
 */
export function refuseInputOverwrite(t: OutputTarget, asDirectory = false): void {
  const out = realPathOf(t.path);
  for (const input of t.inputs ?? []) {
    if (input === "-") {
      continue;
    }
    const inp = realPathOf(input);
    if (inp === out) {
      fail(t, `is one of this tool's inputs (${input}); refusing to write over it`);
    }
    if (asDirectory && inp.startsWith(out + path.sep)) {
      fail(t, `holds one of this tool's inputs (${input}); refusing to replace it`);
    }
  }
}

/** The nearest existing ancestor of an absolute path (the path itself if it exists). */
function existingAncestor(abs: string): string {
  let cur = abs;
  while (!fs.existsSync(cur)) {
    const parent = path.dirname(cur);
    if (parent === cur) {
      break;
    }
    cur = parent;
  }
  return cur;
}

/** Refuses kernel file systems and non-directories on the way to `real`. */
function checkParent(t: OutputTarget, real: string): string {
  const parent = path.dirname(real);
  const anchor = existingAncestor(parent);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(anchor);
  } catch (e) {
    fail(t, `cannot use ${anchor} (${errnoText(e)})`);
  }
  if (!stat.isDirectory()) {
    fail(t, `${anchor} is not a directory`);
  }
  // The target itself when it exists (`/proc/version`), else its nearest existing parent.
  const nearest = existingAncestor(real);
  let fsType: number | undefined;
  try {
    fsType = Number(fs.statfsSync(nearest).type);
  } catch {
    fsType = undefined;
  }
  if (fsType !== undefined && KERNEL_FS[fsType]) {
    fail(
      t,
      `${nearest} is on the kernel's ${KERNEL_FS[fsType]} file system, not a place for output`,
    );
  }
  return anchor;
}

/** Creates the missing parents of `real` one by one (a recursive mkdir may loop on odd file systems). */
function prepareParent(t: OutputTarget, real: string): void {
  const anchor = checkParent(t, real);
  const missing: string[] = [];
  for (let cur = path.dirname(real); cur !== anchor; cur = path.dirname(cur)) {
    missing.unshift(cur);
  }
  for (const dir of missing) {
    try {
      fs.mkdirSync(dir);
    } catch (e) {
      fail(t, `cannot create the directory ${dir} (${errnoText(e)})`);
    }
  }
}

/**
 * Checks, before any work is done, that `t.path` can take a file: not an input, not a
 * directory or device, not on a kernel file system, no file in the way of its parents.
 * Returns the real path the file will be written to.
 */
export function checkFileTarget(t: OutputTarget): { real: string; mode: number } {
  refuseInputOverwrite(t);
  const real = realPathOf(t.path);
  let mode = 0o644;
  if (fs.existsSync(real)) {
    const stat = fs.statSync(real);
    if (stat.isDirectory()) {
      fail(t, "is a directory; give a file name");
    }
    if (!stat.isFile()) {
      fail(t, "exists and is not a regular file");
    }
    mode = stat.mode & 0o777;
  }
  checkParent(t, real);
  return { real, mode };
}

/** Cleanup after a failure must not hide the failure. */
function removeQuietly(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // nothing was created, or it cannot be named (ENAMETOOLONG): nothing to remove
  }
}

function tempName(real: string, kind: string): string {
  return path.join(
    path.dirname(real),
    `.${path.basename(real)}.${kind}-${process.pid}-${crypto.randomBytes(4).toString("hex")}`,
  );
}

/**
 * Writes `text` to the file `t.path` atomically: a temporary file beside it, flushed, then
 * renamed over the target. On any failure nothing at the target changes.
 */
export function writeFileAtomic(t: OutputTarget, text: string): void {
  const { real, mode } = checkFileTarget(t);
  prepareParent(t, real);
  const tmp = tempName(real, "tmp");
  try {
    const fd = fs.openSync(tmp, "wx", mode);
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, real);
  } catch (e) {
    removeQuietly(tmp);
    fail(t, `cannot write (${errnoText(e)})`);
  }
}

/** Every file under `dir`, as paths relative to it (directories themselves left out). */
function listFiles(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      out.push(...listFiles(dir, r));
    } else {
      out.push(r);
    }
  }
  return out;
}

/** Checks that `t.path` can become an output directory (see writeDirectoryAtomic). */
export function checkDirectoryTarget(t: OutputTarget): string {
  refuseInputOverwrite(t, true);
  const real = realPathOf(t.path);
  if (fs.existsSync(real) && !fs.statSync(real).isDirectory()) {
    fail(t, "is not a directory");
  }
  checkParent(t, real);
  return real;
}

/**
 * Replaces the directory `t.path` with exactly `files` (relative path → text), or changes
 * nothing: the new tree is built in a temporary directory beside it, then swapped in with two
 * renames (the old tree is removed only after the new one is in place). A directory that holds
 * files the tool did not write (`ownedFile` says which it did) is refused, never deleted.
 * Returns the files of the old tree that are gone now.
 */
export function writeDirectoryAtomic(
  t: OutputTarget,
  files: Record<string, string>,
  ownedFile: (rel: string) => boolean,
): string[] {
  const real = checkDirectoryTarget(t);
  let previous: string[] = [];
  if (fs.existsSync(real)) {
    try {
      previous = listFiles(real);
    } catch (e) {
      fail(t, `cannot read the directory (${errnoText(e)})`);
    }
    const foreign = previous.filter((f) => !ownedFile(f));
    if (foreign.length > 0) {
      fail(
        t,
        `holds files this tool did not write (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? `, … ${foreign.length - 3} more` : ""}); give a new or empty directory`,
      );
    }
  }
  prepareParent(t, real);
  const tmp = tempName(real, "new");
  try {
    fs.mkdirSync(tmp);
    for (const [rel, text] of Object.entries(files)) {
      const file = path.join(tmp, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
    }
  } catch (e) {
    removeQuietly(tmp);
    fail(t, `cannot write (${errnoText(e)})`);
  }
  if (!fs.existsSync(real)) {
    try {
      fs.renameSync(tmp, real);
    } catch (e) {
      removeQuietly(tmp);
      fail(t, `cannot write (${errnoText(e)})`);
    }
    return [];
  }
  const old = tempName(real, "old");
  try {
    fs.renameSync(real, old);
  } catch (e) {
    removeQuietly(tmp);
    fail(t, `cannot replace the directory (${errnoText(e)})`);
  }
  try {
    fs.renameSync(tmp, real);
  } catch (e) {
    fs.renameSync(old, real);
    removeQuietly(tmp);
    fail(t, `cannot replace the directory (${errnoText(e)})`);
  }
  fs.rmSync(old, { recursive: true, force: true });
  return previous.filter((f) => !(f in files));
}
