// The AWS services the servers call, as stand-ins inside the rehearsal's router namespace
// (issue 11). Run as its own process there (`ip netns exec NS node standins.js CONFIG`):
// - IMDSv2 on 169.254.169.254:80: a token by PUT, then GETs carrying it (no token → 401, as with
//   httpTokens=required); the caller is the instance whose address called.
// - SSM Parameter Store on HTTPS (JSON 1.1 API: GetParameter, GetParameters, with decryption). SigV4
//   is not verified; the caller's identity is the instance whose private address called, and its
//   instance profile's policy from the synth decides (AccessDeniedException otherwise).
// - Route 53 health checkers: probe each health check's target from a checker address, with the
//   check's type, port, path, interval and threshold; on a status change, re-render the zones and
//   `rndc reload` so bind9 answers the failover record sets as Route 53 would.
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import { execFileSync } from "child_process";
import { isAllowed, parameterArn } from "./iam";
import { ExtraZone, HealthState, renderExtraZoneFile, renderZoneFile } from "./dns";
import { DnsZone, HealthCheck, PolicyStatement } from "./model";

export interface StandInServer {
  name: string;
  instanceId: string;
  privateIp: string;
  secondaryIps: string[];
  publicIp?: string;
  mac: string;
  region: string;
  az: string;
  hostname: string;
  vpcCidr: string;
  roleName?: string;
  policy: PolicyStatement[];
  securityGroups: string[];
  sshPublicKey: string;
  userData: string;
}

export interface StandInConfig {
  account: string;
  region: string;
  imdsAddress: string;
  ssm: { address: string; certFile: string; keyFile: string };
  servers: StandInServer[];
  /** Parameter name → type and value (secrets already generated). */
  parameters: Record<string, { type: string; value: string; keyId?: string }>;
  checker: { source: string; statusFile: string };
  /**
   * Where each EIP points: its public address and the private address it is associated to, as
   * the stack's NAT mappings (model.ts `nat`) at boot; an EIP move in `--apply` rewrites it and
   * sends SIGHUP (apply-run.ts). IMDS serves every server's public addresses from it. Absent in
   * configs written before it existed: each server's own `publicIp` then, statically.
   */
  eips?: { publicIp: string; privateIp: string }[];
  healthChecks: HealthCheck[];
  dns: { dir: string; zones: DnsZone[]; extraZones: ExtraZone[]; rndcConf: string };
  logFile: string;
}

function log(cfg: StandInConfig, line: string): void {
  fs.appendFileSync(cfg.logFile, `${new Date().toISOString()} ${line}\n`);
}

function callerOf(cfg: StandInConfig, addr: string | undefined): StandInServer | undefined {
  const ip = (addr ?? "").replace(/^::ffff:/, "");
  return cfg.servers.find((s) => s.privateIp === ip || s.secondaryIps.includes(ip));
}

// ---- IMDSv2 ---------------------------------------------------------------------------------
function imds(cfg: StandInConfig): http.Server {
  const tokens = new Map<string, { server: string; expires: number }>();
  return http.createServer((req, res) => {
    const s = callerOf(cfg, req.socket.remoteAddress);
    const send = (code: number, body: string, type = "text/plain"): void => {
      res.writeHead(code, { "Content-Type": type });
      res.end(body);
    };
    if (!s) {
      send(403, "not an instance of this stack");
      return;
    }
    const url = (req.url ?? "/").replace(/\/+$/, "");
    if (req.method === "PUT" && url === "/latest/api/token") {
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) {
        send(400, "X-aws-ec2-metadata-token-ttl-seconds must be 1..21600");
        return;
      }
      const token = crypto.randomBytes(32).toString("base64url");
      tokens.set(token, { server: s.name, expires: Date.now() + ttl * 1000 });
      res.writeHead(200, {
        "Content-Type": "text/plain",
        "X-aws-ec2-metadata-token-ttl-seconds": String(ttl),
      });
      res.end(token);
      return;
    }
    if (req.method !== "GET") {
      send(405, "method not allowed");
      return;
    }
    const t = tokens.get(String(req.headers["x-aws-ec2-metadata-token"] ?? ""));
    if (!t || t.expires < Date.now() || t.server !== s.name) {
      send(401, "IMDSv2: a valid token is required (httpTokens=required)");
      return;
    }
    const md = metadata(cfg, s);
    if (url === "/latest/user-data") {
      send(200, s.userData);
      return;
    }
    if (url === "/latest/dynamic/instance-identity/document") {
      send(
        200,
        JSON.stringify({
          accountId: cfg.account,
          region: s.region,
          availabilityZone: s.az,
          instanceId: s.instanceId,
          privateIp: s.privateIp,
          architecture: "x86_64",
        }),
        "application/json",
      );
      return;
    }
    const key = url.replace(/^\/latest\/meta-data\/?/, "");
    if (!url.startsWith("/latest/meta-data")) {
      send(404, "not found");
      return;
    }
    if (key in md) {
      send(200, md[key]);
      return;
    }
    // A directory: list its children, as IMDS does.
    const prefix = key === "" ? "" : `${key}/`;
    const children = [
      ...new Set(
        Object.keys(md)
          .filter((k) => k.startsWith(prefix))
          .map((k) => {
            const rest = k.slice(prefix.length);
            return rest.includes("/") ? `${rest.split("/")[0]}/` : rest;
          }),
      ),
    ];
    if (children.length > 0) {
      send(200, children.join("\n"));
      return;
    }
    send(404, "not found");
  });
}

/**
 * The public addresses IMDS gives `s`, from where the EIPs point now (`cfg.eips`), as AWS
 * answers: `public-ipv4` is the public address of the primary private address only;
 * `network/interfaces/macs/MAC/public-ipv4s` lists the public address of every private address
 * of the interface — a service EIP on a secondary address included — in the order of
 * `local-ipv4s`; `ipv4-associations/PUBLIC` names the private address an EIP sits on.
 */
export function publicAddressesOf(
  cfg: Pick<StandInConfig, "eips">,
  s: Pick<StandInServer, "privateIp" | "secondaryIps" | "publicIp">,
): { publicIpv4?: string; publicIpv4s: string[]; associations: Record<string, string> } {
  if (!cfg.eips) {
    return {
      publicIpv4: s.publicIp,
      publicIpv4s: s.publicIp ? [s.publicIp] : [],
      associations: s.publicIp ? { [s.publicIp]: s.privateIp } : {},
    };
  }
  const eips = cfg.eips;
  const mine = [s.privateIp, ...s.secondaryIps].flatMap((p) =>
    eips.filter((e) => e.privateIp === p),
  );
  return {
    publicIpv4: eips.find((e) => e.privateIp === s.privateIp)?.publicIp,
    publicIpv4s: mine.map((e) => e.publicIp),
    associations: Object.fromEntries(mine.map((e) => [e.publicIp, e.privateIp])),
  };
}

/** Every instance-metadata key IMDS serves `s` (a directory is listed from the keys under it). */
export function metadata(cfg: StandInConfig, s: StandInServer): Record<string, string> {
  const m = `network/interfaces/macs/${s.mac}`;
  const md: Record<string, string> = {
    "ami-id": "ami-rehearsal",
    "instance-id": s.instanceId,
    "instance-type": "t3.small",
    hostname: s.hostname,
    "local-hostname": s.hostname,
    "local-ipv4": s.privateIp,
    mac: s.mac,
    "placement/region": s.region,
    "placement/availability-zone": s.az,
    "security-groups": s.securityGroups.join("\n"),
    "public-keys/0/openssh-key": s.sshPublicKey,
    [`${m}/local-ipv4s`]: [s.privateIp, ...s.secondaryIps].join("\n"),
    [`${m}/subnet-ipv4-cidr-block`]: s.vpcCidr,
    [`${m}/vpc-ipv4-cidr-block`]: s.vpcCidr,
    [`${m}/device-number`]: "0",
    [`${m}/mac`]: s.mac,
  };
  const pub = publicAddressesOf(cfg, s);
  if (pub.publicIpv4) {
    md["public-ipv4"] = pub.publicIpv4;
  }
  if (pub.publicIpv4s.length > 0) {
    md[`${m}/public-ipv4s`] = pub.publicIpv4s.join("\n");
  }
  for (const [publicIp, privateIp] of Object.entries(pub.associations)) {
    md[`${m}/ipv4-associations/${publicIp}`] = privateIp;
  }
  if (s.roleName) {
    const now = new Date();
    md["iam/info"] = JSON.stringify({
      Code: "Success",
      LastUpdated: now.toISOString(),
      InstanceProfileArn: `arn:aws:iam::${cfg.account}:instance-profile/${s.roleName}`,
      InstanceProfileId: "AIPAREHEARSAL",
    });
    md[`iam/security-credentials/${s.roleName}`] = JSON.stringify({
      Code: "Success",
      LastUpdated: now.toISOString(),
      Type: "AWS-HMAC",
      AccessKeyId: `ASIA${crypto.createHash("sha256").update(s.name).digest("hex").slice(0, 16).toUpperCase()}`,
      SecretAccessKey: crypto.randomBytes(30).toString("base64"),
      Token: crypto.randomBytes(60).toString("base64"),
      Expiration: new Date(now.getTime() + 6 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
    });
  }
  return md;
}

// ---- SSM Parameter Store ----------------------------------------------------------------------
function ssm(cfg: StandInConfig): https.Server {
  return https.createServer(
    { cert: fs.readFileSync(cfg.ssm.certFile), key: fs.readFileSync(cfg.ssm.keyFile) },
    (req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString("utf8")));
      req.on("end", () => {
        const reply = (code: number, obj: unknown): void => {
          res.writeHead(code, {
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-RequestId": crypto.randomUUID(),
          });
          res.end(JSON.stringify(obj));
        };
        const s = callerOf(cfg, req.socket.remoteAddress);
        const target = String(req.headers["x-amz-target"] ?? "");
        if (!s || !s.roleName) {
          reply(400, {
            __type: "UnrecognizedClientException",
            message: "The security token included in the request is invalid.",
          });
          return;
        }
        let input: { Name?: string; Names?: string[]; WithDecryption?: boolean };
        try {
          input = JSON.parse(body || "{}") as typeof input;
        } catch {
          reply(400, { __type: "SerializationException", message: "body is not JSON" });
          return;
        }
        const op = target.replace(/^AmazonSSM\./, "");
        const names =
          op === "GetParameter"
            ? [input.Name ?? ""]
            : op === "GetParameters"
              ? (input.Names ?? [])
              : undefined;
        if (!names) {
          reply(400, {
            __type: "UnknownOperationException",
            message: `${target} is not served by the rehearsal`,
          });
          return;
        }
        const action = `ssm:${op}`;
        for (const n of names) {
          const arn = parameterArn(cfg.region, cfg.account, n);
          if (!isAllowed(s.policy, action, arn)) {
            log(cfg, `ssm DENY ${s.name} ${action} ${n}`);
            reply(400, {
              __type: "AccessDeniedException",
              Message: `User: arn:aws:sts::${cfg.account}:assumed-role/${s.roleName}/${s.instanceId} is not authorized to perform: ${action} on resource: ${arn} because no identity-based policy allows the ${action} action`,
            });
            return;
          }
        }
        const view = (n: string): Record<string, unknown> | undefined => {
          const p = cfg.parameters[n];
          if (!p) {
            return undefined;
          }
          const value =
            p.type === "SecureString" && !input.WithDecryption
              ? Buffer.from(
                  `rehearsal-kms:${crypto.createHash("sha256").update(p.value).digest("hex")}`,
                ).toString("base64")
              : p.value;
          return {
            Name: n,
            Type: p.type,
            Value: value,
            Version: 1,
            LastModifiedDate: 1767225600,
            ARN: parameterArn(cfg.region, cfg.account, n),
            DataType: "text",
          };
        };
        // Decrypting a SecureString under a customer-managed key is kms:Decrypt by SSM on the
        // caller's behalf, with the parameter's ARN as encryption context: the role must allow it.
        if (input.WithDecryption) {
          for (const n of names) {
            const p = cfg.parameters[n];
            if (p?.type !== "SecureString" || !p.keyId || p.keyId.startsWith("alias/aws/")) {
              continue;
            }
            const context = {
              "kms:EncryptionContext:PARAMETER_ARN": parameterArn(cfg.region, cfg.account, n),
              "kms:ViaService": `ssm.${cfg.region}.amazonaws.com`,
            };
            if (!isAllowed(s.policy, "kms:Decrypt", p.keyId, context)) {
              log(cfg, `ssm DENY ${s.name} kms:Decrypt ${n}`);
              reply(400, {
                __type: "AccessDeniedException",
                Message: `User: arn:aws:sts::${cfg.account}:assumed-role/${s.roleName}/${s.instanceId} is not authorized to perform: kms:Decrypt on resource: ${p.keyId} because no identity-based policy allows the kms:Decrypt action (Service: AWSKMS)`,
              });
              return;
            }
          }
        }
        log(cfg, `ssm ALLOW ${s.name} ${action} ${names.join(",")}`);
        if (op === "GetParameter") {
          const v = view(names[0]);
          if (!v) {
            reply(400, { __type: "ParameterNotFound", message: "" });
            return;
          }
          reply(200, { Parameter: v });
          return;
        }
        reply(200, {
          Parameters: names.map(view).filter((v) => v !== undefined),
          InvalidParameters: names.filter((n) => !cfg.parameters[n]),
        });
      });
    },
  );
}

// ---- Route 53 health checkers -----------------------------------------------------------------
/**
 * One check's counts: the status it holds (ok) and the opposite answers in a row (n); every probe
 * made and every probe that passed (drills compare these counts across a window: a sample of the
 * status can miss a pass, and before the threshold it is only the old status).
 */
export interface CheckStreak {
  ok: boolean;
  n: number;
  probes: number;
  passes: number;
  last?: boolean;
}

/**
 * The checker's status file (`checker.statusFile`), rewritten after every probe: the status each
 * check holds (absent: never flipped, healthy as in Route 53) and each check's counts.
 */
export interface CheckerStatus {
  health: HealthState;
  streak: Record<string, CheckStreak>;
}

/** Reads the checker's status file (throws when it is absent or unreadable). */
export function readCheckerStatus(file: string): CheckerStatus {
  return JSON.parse(fs.readFileSync(file, "utf8")) as CheckerStatus;
}

function probe(cfg: StandInConfig, hc: HealthCheck): Promise<boolean> {
  const timeoutMs = 4000; // Route 53: 4 s to connect (TCP) or get a response (HTTP)
  return new Promise((resolve) => {
    if (hc.type === "TCP") {
      const sock = net.connect({
        host: hc.ipAddress,
        port: hc.port,
        localAddress: cfg.checker.source,
        timeout: timeoutMs,
      });
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("timeout", () => {
        sock.destroy();
        resolve(false);
      });
      sock.once("error", () => resolve(false));
      return;
    }
    const mod = hc.type === "HTTPS" ? https : http;
    const req = mod.request(
      {
        host: hc.ipAddress,
        port: hc.port,
        path: hc.path ?? "/",
        method: "GET",
        localAddress: cfg.checker.source,
        timeout: timeoutMs,
        rejectUnauthorized: false,
        headers: { "User-Agent": "Amazon-Route53-Health-Check-Service (rehearsal)" },
      },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 500) >= 200 && (res.statusCode ?? 500) < 400);
      },
    );
    req.once("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.once("error", () => resolve(false));
    req.end();
  });
}

function checker(cfg: StandInConfig, configFile: string): void {
  const health: HealthState = {};
  const streak: CheckerStatus["streak"] = {};
  let serial = Math.floor(Date.now() / 1000);
  const writeZones = (): void => {
    serial++;
    for (const z of cfg.dns.zones) {
      fs.writeFileSync(`${cfg.dns.dir}/${z.name}.zone`, renderZoneFile(z, health, serial));
    }
    for (const z of cfg.dns.extraZones) {
      fs.writeFileSync(`${cfg.dns.dir}/${z.name}.zone`, renderExtraZoneFile(z, serial));
    }
  };
  const writeStatus = (): void => {
    const status: CheckerStatus = { health, streak };
    fs.writeFileSync(`${cfg.checker.statusFile}.tmp`, JSON.stringify(status));
    fs.renameSync(`${cfg.checker.statusFile}.tmp`, cfg.checker.statusFile);
  };
  writeStatus();
  // `--apply` (issue 12, apply-run.ts) changes record sets, parameter values and EIP associations
  // as `pulumi up` would: it rewrites the config file and sends SIGHUP; IMDS answers from the new
  // associations at once; the zones are re-rendered from the new records under the measured
  // health, with a new serial, and bind9 reloads them (the serial is how apply-run knows the
  // reload happened).
  process.on("SIGHUP", () => {
    const next = JSON.parse(fs.readFileSync(configFile, "utf8")) as StandInConfig;
    cfg.dns.zones = next.dns.zones;
    cfg.parameters = next.parameters;
    cfg.eips = next.eips;
    writeZones();
    try {
      execFileSync("rndc", ["-c", cfg.dns.rndcConf, "reload"], { stdio: "ignore", timeout: 10000 });
      log(cfg, `reloaded ${configFile}: zones at serial ${serial}`);
    } catch (e) {
      log(cfg, `rndc reload failed: ${(e as Error).message}`);
    }
  });
  for (const hc of cfg.healthChecks) {
    streak[hc.id] = { ok: true, n: 0, probes: 0, passes: 0 };
    const tick = async (): Promise<void> => {
      const ok = await probe(cfg, hc);
      const st = streak[hc.id];
      st.probes++;
      st.passes += ok ? 1 : 0;
      st.last = ok;
      st.n = st.ok === ok ? 0 : st.n + 1;
      if (st.n >= hc.failureThreshold) {
        st.ok = ok;
        st.n = 0;
        health[hc.id] = ok;
        log(
          cfg,
          `health ${hc.id} ${hc.type} ${hc.ipAddress}:${hc.port}${hc.path ?? ""} → ${ok ? "healthy" : "unhealthy"}`,
        );
        writeZones();
        try {
          execFileSync("rndc", ["-c", cfg.dns.rndcConf, "reload"], {
            stdio: "ignore",
            timeout: 10000,
          });
        } catch (e) {
          log(cfg, `rndc reload failed: ${(e as Error).message}`);
        }
      }
      writeStatus();
    };
    setInterval(() => void tick(), hc.intervalSeconds * 1000);
    void tick();
  }
}

export function main(configFile: string): void {
  const cfg = JSON.parse(fs.readFileSync(configFile, "utf8")) as StandInConfig;
  imds(cfg).listen(80, cfg.imdsAddress, () => log(cfg, `imds on ${cfg.imdsAddress}:80`));
  ssm(cfg).listen(443, cfg.ssm.address, () => log(cfg, `ssm on ${cfg.ssm.address}:443`));
  checker(cfg, configFile);
  process.on("SIGTERM", () => process.exit(0));
}

if (require.main === module) {
  main(process.argv[2]);
}
