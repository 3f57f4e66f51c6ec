// Files that land on servers (scripts, units, timers, config, the health agent) are real files
// under server/, linted by shellcheck and pyflakes, instead of TypeScript template strings
// (issue 10). Components read them from the installed package — never from the working
// directory — and render only values into them, with one small documented substitution:
// `@@NAME@@` stands for the value `NAME`. Shell scripts prefer reading values from the env file
// their unit names; `@@NAME@@` is for files that cannot source one (config files, units).
import * as fs from "fs";
import * as path from "path";
import { PACKAGE_ROOT } from "../lib/package-root";

/** The folder that holds every file that lands on a server. */
export const SERVER_DIR = path.join(PACKAGE_ROOT, "server");

const PLACEHOLDER = /@@([A-Z][A-Z0-9_]*)@@/g;
const cache = new Map<string, string>();

/** The text of `server/<relPath>`, read once per process. */
export function serverFile(relPath: string): string {
  let text = cache.get(relPath);
  if (text === undefined) {
    text = fs.readFileSync(path.join(SERVER_DIR, relPath), "utf8");
    cache.set(relPath, text);
  }
  return text;
}

/**
 * `server/<relPath>` with every `@@NAME@@` replaced by `values.NAME`. Every placeholder must
 * have a value and every value must be used, so a renamed placeholder fails the synth (and its
 * tests) instead of shipping `@@NAME@@` to a server.
 */
export function renderServerFile(relPath: string, values: Record<string, string | number>): string {
  return renderTemplate(serverFile(relPath), values, `server/${relPath}`);
}

/** The substitution itself, for text already in hand (`what` names it in errors). */
export function renderTemplate(
  text: string,
  values: Record<string, string | number>,
  what: string,
): string {
  const used = new Set<string>();
  const missing = new Set<string>();
  const out = text.replace(PLACEHOLDER, (_m, name: string) => {
    if (!Object.prototype.hasOwnProperty.call(values, name)) {
      missing.add(name);
      return "";
    }
    used.add(name);
    return String(values[name]);
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (missing.size > 0 || unused.length > 0) {
    const problems = [
      ...[...missing].map((n) => `@@${n}@@ has no value`),
      ...unused.map((n) => `value ${n} has no @@${n}@@ placeholder`),
    ];
    throw new Error(`${what}: ${problems.join("; ")}`);
  }
  return out;
}

/** Shell-quotes one word for sh/bash (bare when it needs no quoting). The only shellQuote. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** An env file the scripts source: `KEY=value` lines, shell-quoted; undefined values omitted. */
export function envFile(vars: Record<string, string | number | undefined>): string {
  return (
    Object.entries(vars)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${shellQuote(String(v))}`)
      .join("\n") + "\n"
  );
}

/**
 * Where cloud-init write_files installs server/lib/hastack.sh (the shell helpers every service
 * shares); scripts on a server source it from here (see the header of that file).
 */
export const HASTACK_LIB_PATH = "/usr/local/lib/hastack/hastack.sh";

/** The write_files entry that installs server/lib/hastack.sh at HASTACK_LIB_PATH. */
export function hastackLibWriteFile(): { path: string; permissions: string; content: string } {
  return { path: HASTACK_LIB_PATH, permissions: "0644", content: userDataFile("lib/hastack.sh") };
}

/**
 * A server file as user-data carries it: without its comment-only lines except the first two
 * (shebang, the header that names the file under server/), which the repository keeps. EC2 caps
 * user-data at 16 KB even gzipped; the mail servers' passed it twice (issue 17, then with the
 * shared helpers' comments: 16,552 bytes). Every format it is used on — bash, Python, Postfix,
 * Dovecot, OpenDKIM, nginx, systemd units — ignores a line whose first non-blank character is
 * `#`; none of those files has a heredoc or a multi-line string with such a line
 * (test/components/mail-render.test.ts, test/components/server-pair.test.ts). Never for a file
 * where `#` can be a directive (sudoers' `#include`).
 */
export function withoutComments(text: string): string {
  return text
    .split("\n")
    .filter((line, i) => i < 2 || !/^\s*#/.test(line))
    .join("\n");
}

/** serverFile(rel) as user-data carries it (withoutComments). */
export function userDataFile(relPath: string): string {
  return withoutComments(serverFile(relPath));
}
