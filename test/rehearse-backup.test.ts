// `npm run rehearse -- backup` end to end: the drill's library, for real (mariadbd, rsync,
// rrsync), and proof that it can fail — a snapshot altered on the standby NAS is reported.
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { rehearseBackup } from "../scripts/rehearse-backup";

describe("rehearseBackup (real MariaDB, rsync, standby NAS, fresh restore)", function () {
  this.timeout(240_000);

  it("restores every job from the standby NAS with zero mismatches", async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-rb-test-"));
    const lines: string[] = [];
    const s = await rehearseBackup({ workDir: work, rows: 2000, log: (l) => lines.push(l), timeoutSeconds: 200 });
    expect(s.problems).to.deep.equal([]);
    expect(s.ok).to.equal(true);
    expect(s.mismatches).to.equal(0);
    // 2000 CDRs + 200 added between the rounds + 300 app documents.
    expect(s.rows).to.equal(2500);
    expect(s.jobs.map((j) => j.name)).to.deep.equal(["mail-maildirs", "mysql-dump", "pbx-config", "pbx-spool"]);
    expect(s.files).to.be.greaterThan(250);
    expect(s.bytes).to.be.greaterThan(4_000_000);
    expect(lines.some((l) => l.includes("checksums match"))).to.equal(true);
    expect(fs.existsSync(work), "work directory removed").to.equal(false);
  });

  it("reports a mismatch when a snapshot on the standby NAS was altered", async () => {
    const s = await rehearseBackup({
      rows: 200,
      mailboxes: 2,
      messagesPerMailbox: 5,
      recordings: 2,
      timeoutSeconds: 200,
      afterReplication: (nas) => {
        const dir = path.join(nas.standby, "pbx-config", "latest", "data");
        fs.appendFileSync(path.join(dir, "extensions.conf"), "; tampered\n");
      },
    });
    expect(s.ok).to.equal(false);
    expect(s.mismatches).to.be.greaterThan(0);
    expect(s.problems.join("\n")).to.match(/pbx-config.*(MANIFEST|does not match)/);
  });
});
