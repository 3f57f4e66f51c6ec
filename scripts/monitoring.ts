// npm run monitoring -- --from OUTPUTS.json --out DIR [--blackbox HOST:PORT] [--alertmanager HOST:PORT]
// Prometheus config, targets and alert rules from the stack outputs (lib/monitoring/).
import { exitWith, parseFlags, runTool, stringFlag, UsageError } from "../lib/cli/flags";

const USAGE = `usage: npm run monitoring -- --from OUTPUTS.json --out DIR [options]

  --from FILE             \`pulumi stack output --json\` output, or an offline synth / stack export file
  --out DIR               the directory prometheus.yml, blackbox.yml, rules/ and targets/ are written
                          to, replaced as a whole (it must hold nothing else)
  --blackbox HOST:PORT    blackbox exporter address as Prometheus reaches it (default 127.0.0.1:9115)
  --alertmanager HOST:PORT  send alerts there (default: none)
  --scrape-interval DUR   e.g. 30s (default), 1m
exit: 0 written, 2 bad flags, input or output directory`;

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

function main(argv: string[]): Promise<number> {
  return runTool("monitoring", USAGE, async () => {
    const { values } = parseFlags(argv, {
      from: { type: "string" },
      out: { type: "string" },
      blackbox: { type: "string" },
      alertmanager: { type: "string" },
      "scrape-interval": { type: "string" },
    });
    const from = stringFlag(values, "from");
    const out = stringFlag(values, "out");
    if (!from || !out) {
      throw new UsageError(`${!from ? "--from" : "--out"} is required`);
    }
    for (const flag of ["blackbox", "alertmanager"]) {
      const v = stringFlag(values, flag);
      if (v !== undefined && !HOST_PORT.test(v)) {
        throw new UsageError(`--${flag} must be HOST:PORT, got ${JSON.stringify(v)}`);
      }
    }
    const interval = stringFlag(values, "scrape-interval");
    if (interval !== undefined && !/^\d+(s|m)$/.test(interval)) {
      throw new UsageError(
        `--scrape-interval must be like 30s or 1m, got ${JSON.stringify(interval)}`,
      );
    }
    const { runMonitoring } = await import("../lib/monitoring/monitoring-command");
    runMonitoring({
      from,
      out,
      blackboxAddress: stringFlag(values, "blackbox"),
      alertmanager: stringFlag(values, "alertmanager"),
      scrapeInterval: interval,
      log: (line) => process.stderr.write(line + "\n"),
    });
    return 0;
  });
}

if (require.main === module) {
  exitWith("monitoring", main(process.argv.slice(2)));
}
