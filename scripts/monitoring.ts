// npm run monitoring -- --from OUTPUTS.json --out DIR [--blackbox HOST:PORT] [--alertmanager HOST:PORT]
// Thin shell over monitoring-export.ts: reads `pulumi stack output --json` (or a synth file),
// writes prometheus.yml, blackbox.yml, rules/ and targets/ into DIR. Exit 2 on bad input.
import * as fs from "fs";
import * as path from "path";
import {
  MonitoringInputError,
  MonitoringOptions,
  readMonitoringOutputs,
  renderMonitoring,
} from "../lib/monitoring/monitoring-export";

const USAGE = `usage: npm run monitoring -- --from OUTPUTS.json --out DIR [options]

  --from FILE             \`pulumi stack output --json\` output, or an offline synth / stack export file
  --out DIR               where prometheus.yml, blackbox.yml, rules/ and targets/ are written
  --blackbox HOST:PORT    blackbox exporter address as Prometheus reaches it (default 127.0.0.1:9115)
  --alertmanager HOST:PORT  send alerts there (default: none)
  --scrape-interval DUR   e.g. 30s (default), 1m`;

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

export function main(argv: string[]): number {
  let from: string | undefined;
  let out: string | undefined;
  const opts: MonitoringOptions = {};
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      const value = (what: string): string => {
        const v = argv[++i];
        if (v === undefined || v.startsWith("--")) {
          throw new MonitoringInputError(`${a} needs ${what}`);
        }
        return v;
      };
      switch (a) {
        case "--from":
          from = value("a file");
          break;
        case "--out":
          out = value("a directory");
          break;
        case "--blackbox":
        case "--alertmanager": {
          const v = value("HOST:PORT");
          if (!HOST_PORT.test(v)) {
            throw new MonitoringInputError(`${a} must be HOST:PORT, got ${JSON.stringify(v)}`);
          }
          if (a === "--blackbox") {
            opts.blackboxAddress = v;
          } else {
            opts.alertmanager = v;
          }
          break;
        }
        case "--scrape-interval": {
          const v = value("a duration such as 30s");
          if (!/^\d+(s|m)$/.test(v)) {
            throw new MonitoringInputError(
              `--scrape-interval must be like 30s or 1m, got ${JSON.stringify(v)}`,
            );
          }
          opts.scrapeInterval = v;
          break;
        }
        case "-h":
        case "--help":
          process.stdout.write(USAGE + "\n");
          return 0;
        default:
          throw new MonitoringInputError(`unknown argument ${a}`);
      }
    }
    if (!from || !out) {
      throw new MonitoringInputError(`${!from ? "--from" : "--out"} is required`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(fs.readFileSync(from, "utf8"));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new MonitoringInputError(
        `--from ${from}: ${err.code ? `cannot read (${err.code})` : `not valid JSON (${err.message})`}`,
      );
    }
    const outputs = readMonitoringOutputs(doc, from);
    const files = renderMonitoring(outputs, opts);
    // Targets of a service that is gone must not linger: file_sd would keep probing them.
    const targetsDir = path.join(out, "targets");
    if (fs.existsSync(targetsDir)) {
      for (const f of fs.readdirSync(targetsDir)) {
        if (/^blackbox-.*\.json$/.test(f) && !files[`targets/${f}`]) {
          fs.rmSync(path.join(targetsDir, f));
          process.stderr.write(`monitoring: removed stale targets/${f}\n`);
        }
      }
    }
    for (const [rel, text] of Object.entries(files)) {
      const file = path.join(out, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      process.stderr.write(`monitoring: wrote ${file}\n`);
    }
    return 0;
  } catch (e) {
    if (e instanceof MonitoringInputError) {
      process.stderr.write(`monitoring: ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    const err = e as NodeJS.ErrnoException;
    if (err.code && err.path) {
      process.stderr.write(`monitoring: cannot write ${err.path} (${err.code})\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
