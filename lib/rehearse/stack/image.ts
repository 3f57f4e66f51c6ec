// The rehearsal's base image (issue 11): Debian bookworm, the pinned AMI's OS, built once with
// mmdebstrap and cached under /var/cache/hastack/images/<key>, keyed by everything that goes in it.
// Containers have no route out, so the packages the servers' user-data installs are downloaded
// when the image is built into a local file repository inside the image, the only apt source:
// cloud-init's `package_update`/`packages` steps then run exactly as on AWS, against it.
// What else the image carries is what an AMI carries, never user-data: cloud-init, OpenSSH, the
// rehearsal CA in the system trust store (for the SSM stand-in's certificate), NoCloud as the
// datasource and systemd-networkd to apply the network-config the rehearsal supplies.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { selfSignedCertificate } from "./pki";

export const CACHE_DIR = process.env.HASTACK_CACHE_DIR ?? "/var/cache/hastack";
export const SUITE = "bookworm";

/** What a Debian cloud AMI already has: cloud-init, systemd, OpenSSH, sudo, locales. */
export const BASE_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "iproute2",
  "cloud-init",
  "python3",
  "locales",
  "ca-certificates",
  "openssh-server",
  "sudo",
  "netbase",
];

/**
 * Packages Debian's own EC2 image of bookworm carries that the servers' user-data also lists
 * (Debian cloud team's debian-cloud-images, config_space/bookworm/package_config: class EC2
 * installs awscli, class EXTRAS curl and socat; both classes make the ec2 image). On AWS
 * cloud-init's `packages:` finds them installed and leaves them; a minbase image made every
 * first boot here install awscli and its ~30 Python packages too, work an instance never does
 * (about a third of the NAS's and PBX's package step). The AMI's other packages stay out: a
 * kernel, a boot loader and growroot have nothing to do in a container, systemd-resolved and
 * netplan would change how the rehearsal's network-config is applied, and man-db only adds its
 * trigger to every install (so the rehearsal does slightly less than an instance there).
 */
export const AMI_PACKAGES = ["awscli", "curl", "socat"];

/** Where the local repository lives inside the image. */
export const REPO_IN_IMAGE = "/var/local/hastack-repo";

/** Bump when the recipe below changes in a way the key would not see. */
const RECIPE = 3;

export interface BaseImage {
  key: string;
  dir: string;
  root: string;
  caCert: string;
  caKey: string;
  built: boolean;
  seconds: number;
}

export function imageKey(repoPackages: string[]): string {
  const spec = JSON.stringify({
    RECIPE,
    SUITE,
    base: [...BASE_PACKAGES, ...AMI_PACKAGES].sort(),
    repo: [...new Set(repoPackages)].sort(),
  });
  return crypto.createHash("sha256").update(spec).digest("hex").slice(0, 16);
}

/** The cached image for `repoPackages`, building it when absent (minutes: mmdebstrap + downloads). */
export function ensureImage(repoPackages: string[], log: (l: string) => void): BaseImage {
  const key = imageKey(repoPackages);
  const dir = path.join(CACHE_DIR, "images", key);
  const result = {
    key,
    dir,
    root: path.join(dir, "root"),
    caCert: path.join(dir, "ca.crt"),
    caKey: path.join(dir, "ca.key"),
  };
  if (fs.existsSync(path.join(dir, "complete"))) {
    return { ...result, built: false, seconds: 0 };
  }
  const started = Date.now();
  const tmp = `${dir}.building-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    log(
      `building the base image ${key} (Debian ${SUITE}, ${repoPackages.length} packages for the local repository); minutes, once`,
    );
    // The rehearsal CA: trusted by the image, signs the stand-ins' certificates per run.
    selfSignedCertificate({
      subject: "/CN=hastack rehearsal CA",
      days: 3650,
      keyFile: path.join(tmp, "ca.key"),
      certFile: path.join(tmp, "ca.crt"),
    });
    const repo = `"$1"${REPO_IN_IMAGE}`;
    const hooks = [
      // Download (not install) what the user-data installs, with its dependencies, into the repo.
      `chroot "$1" apt-get install --download-only -y ${repoPackages.join(" ")}`,
      `mkdir -p ${repo} && mv "$1"/var/cache/apt/archives/*.deb ${repo}/`,
      `cd ${repo} && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null && gzip -9k Packages`,
      `chroot "$1" apt-get clean`,
      `rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*`,
      `echo "deb [trusted=yes] file:${REPO_IN_IMAGE} ./" > "$1"/etc/apt/sources.list.d/hastack-rehearsal.list`,
      `cp ${path.join(tmp, "ca.crt")} "$1"/usr/local/share/ca-certificates/hastack-rehearsal.crt && chroot "$1" update-ca-certificates`,
      `printf 'datasource_list: [ NoCloud, None ]\\n' > "$1"/etc/cloud/cloud.cfg.d/90-hastack-rehearsal.cfg`,
      `chroot "$1" systemctl enable systemd-networkd.service`,
      // The NoCloud seed and the machine id are per server.
      `rm -f "$1"/etc/machine-id && touch "$1"/etc/machine-id`,
      `sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' "$1"/etc/locale.gen && chroot "$1" locale-gen`,
    ];
    execFileSync(
      "mmdebstrap",
      [
        "--variant=minbase",
        `--include=${[...BASE_PACKAGES, ...AMI_PACKAGES].join(",")}`,
        ...hooks.map((h) => `--customize-hook=${h}`),
        SUITE,
        path.join(tmp, "root"),
      ],
      { stdio: ["ignore", "ignore", "pipe"], maxBuffer: 64 * 1024 * 1024 },
    );
    fs.writeFileSync(path.join(tmp, "packages.txt"), repoPackages.join("\n") + "\n");
    fs.writeFileSync(path.join(tmp, "complete"), new Date().toISOString() + "\n");
    // Another rehearsal may have built the same image meanwhile, and its containers may already
    // run on it: a complete image is never replaced, ours is dropped instead.
    if (fs.existsSync(path.join(dir, "complete"))) {
      fs.rmSync(tmp, { recursive: true, force: true });
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const err = e as Error & { stderr?: Buffer };
    throw new Error(
      `building the base image failed: ${err.message}\n${err.stderr?.toString().split("\n").slice(-20).join("\n") ?? ""}`,
    );
  }
  return { ...result, built: true, seconds: (Date.now() - started) / 1000 };
}
