// hastack: the program. It reads and validates the whole stack config (before declaring any
// resource), composes the components and returns the stack outputs that monitoring and the
// downtime plan read. Nothing else lives here.
import * as pulumi from "@pulumi/pulumi";
import {
  CONFIG_KEYS,
  ConfigError,
  ConfigProblem,
  NAMESPACE,
  parseStackConfig,
  StackConfig,
} from "./stack-config";
import { Dns } from "./components/dns";
import { Network } from "./components/network";
import { Role, ServerPair } from "./components/server-pair";

export = async (): Promise<Record<string, unknown>> => {
  const cfg = readConfig();

  const network = new Network("network", {
    existing: "subnets" in cfg.network ? cfg.network : undefined,
    create: "subnets" in cfg.network ? undefined : cfg.network,
  });
  const dns = new Dns("dns", {
    domain: cfg.domain,
    zoneId: cfg.zone.id,
    zoneName: cfg.zone.name,
    create: cfg.zone.create,
  });

  const subnetsFor = (
    service: "mail" | "pbx" | "mysql" | "nas",
  ): Record<Role, { id: pulumi.Input<string>; az: string }> => {
    const azs = cfg[service].azs ?? {
      primary: network.subnets[0].az,
      standby: network.subnets[1].az,
    };
    return { primary: network.subnetIn(azs.primary), standby: network.subnetIn(azs.standby) };
  };
  const mail = new ServerPair("mail", {
    service: "mail",
    active: cfg.mail.active,
    switchover: cfg.mail.switchover ?? "dns",
    vpcId: network.vpcId,
    subnets: subnetsFor("mail"),
    ami: cfg.mail.ami ?? cfg.ami,
    instanceType: cfg.mail.instanceType,
    rootVolumeGb: cfg.mail.rootVolumeGb,
    dataVolumeGb: cfg.mail.dataVolumeGb,
    keyName: cfg.keyName,
    cloudConfig: {
      primary: { hostname: cfg.mail.hostname, fqdn: `${cfg.mail.hostname}.${cfg.domain}` },
      standby: { hostname: cfg.mail.hostname, fqdn: `${cfg.mail.hostname}.${cfg.domain}` },
    },
    servicePorts: [
      { protocol: "tcp", fromPort: 25, description: "SMTP", name: "smtp", probe: "smtp_banner" },
    ],
    adminCidrs: cfg.adminCidrs,
    healthCheck: { type: "TCP", port: 25, failureThreshold: cfg.mail.healthCheck.failureThreshold },
    ttl: cfg.mail.ttl,
    bootSeconds: cfg.mail.bootSeconds,
    dns,
    serviceName: `${cfg.mail.hostname}.${cfg.domain}`,
    serverNames: {
      primary: `${cfg.mail.serverNames.primary}.${cfg.domain}`,
      standby: `${cfg.mail.serverNames.standby}.${cfg.domain}`,
    },
  });

  return {
    region: cfg.region,
    domain: cfg.domain,
    zoneId: dns.zoneId,
    services: { mail: mail.summary },
    contacts: cfg.contacts,
  };
};

/**
 * Reads every `hastack:*` key (and aws:region) and validates them in one go. Throws a RunError
 * — printed without a stack trace — listing every problem by its full key.
 */
function readConfig(): StackConfig {
  const raw: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    const [ns, key] = fullKey.split(":", 2);
    if (ns === "aws" && key === "region") {
      raw.region = value;
    } else if (ns === NAMESPACE && (CONFIG_KEYS as readonly string[]).includes(key)) {
      raw[key] = parseValue(value);
    } else if (ns === NAMESPACE) {
      problems.push({
        key: fullKey,
        message: `is not a known key (known: ${CONFIG_KEYS.join(", ")})`,
      });
    }
  }
  let cfg: StackConfig | undefined;
  try {
    cfg = parseStackConfig(raw);
  } catch (e) {
    if (!(e instanceof ConfigError)) {
      throw e;
    }
    problems.unshift(...e.problems);
  }
  if (problems.length > 0 || cfg === undefined) {
    throw new pulumi.RunError(new ConfigError(problems).message);
  }
  return cfg;
}

/** The CLI passes objects and lists JSON-encoded; plain strings stay strings. */
function parseValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
