// Where the installed hastack package lives, found from this file rather than the working
// directory, so tools, tests and the server files they read work from any cwd (issue 10).
import * as fs from "fs";
import * as path from "path";

/** Walks up from `start` to the directory whose package.json names the hastack package. */
export function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (fs.existsSync(manifest)) {
      const { name } = JSON.parse(fs.readFileSync(manifest, "utf8")) as { name?: string };
      if (name === "hastack") {
        return dir;
      }
    }
    if (path.dirname(dir) === dir) {
      throw new Error(`no hastack package.json above ${start}`);
    }
  }
}

/** The package root: the directory holding package.json, Pulumi.yaml and server/. */
export const PACKAGE_ROOT = findPackageRoot(__dirname);
